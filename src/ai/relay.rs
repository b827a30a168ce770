//! Passing a provider's response to the client while reading its usage.
//!
//! A task owns the upstream body: each frame goes to the client through a channel of one
//! (so nothing is held back and a slow client slows the upstream) and to the
//! [`UsageReader`]. If the client goes away, the task keeps reading, for at most the
//! drain timeout, so the call is still settled to what the provider reports. The
//! client's body ends once the call is settled.

use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::BoxError;
use super::scrub::Scrubber;
use super::usage::{Usage, UsageReader};
use super::usage_chunk::UsageChunkFilter;

/// How a relayed body ended.
#[derive(Debug, Clone, Copy)]
pub struct RelayEnd {
    pub usage: Usage,
    /// The upstream body ended normally.
    pub completed: bool,
    pub client_gone: bool,
}

impl RelayEnd {
    pub fn outcome(&self) -> &'static str {
        match (self.completed, self.client_gone) {
            (true, false) => "completed",
            (true, true) => "client_disconnected",
            (false, true) => "client_disconnected_incomplete",
            (false, false) => "upstream_broken",
        }
    }
}

/// Starts relaying `body`; the receiver yields what the client gets, through `scrubber`
/// and, when Tollgate asked for a usage chunk the client did not, `usage_chunk` (the usage
/// is read from what the provider sent). `done` runs once the upstream body has ended,
/// failed or been abandoned.
pub fn spawn<B, F, Fut>(
    body: B,
    content_type: &str,
    mut scrubber: Scrubber,
    mut usage_chunk: Option<UsageChunkFilter>,
    drain: Duration,
    done: F,
) -> mpsc::Receiver<Result<Bytes, BoxError>>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError> + Send,
    F: FnOnce(RelayEnd) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (tx, rx) = mpsc::channel(1);
    let mut reader = UsageReader::for_content_type(content_type);
    tokio::spawn(async move {
        let mut body = body;
        let mut client: Option<mpsc::Sender<Result<Bytes, BoxError>>> = Some(tx);
        let mut deadline: Option<tokio::time::Instant> = None;
        let completed = loop {
            let next = match deadline {
                Some(d) => match tokio::time::timeout_at(d, body.frame()).await {
                    Ok(next) => next,
                    Err(_) => break false,
                },
                None => body.frame().await,
            };
            match next {
                None => break true,
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    reader.feed(&data);
                    let mut data = scrubber.feed(&data);
                    if let Some(f) = usage_chunk.as_mut() {
                        data = f.feed(&data);
                    }
                    // A client that stops reading but keeps its connection counts as
                    // gone after `drain`, so the call is still settled.
                    if let Some(tx) = &client
                        && !matches!(
                            tokio::time::timeout(drain, tx.send(Ok(data))).await,
                            Ok(Ok(()))
                        )
                    {
                        client = None;
                        deadline = Some(tokio::time::Instant::now() + drain);
                    }
                }
                Some(Err(e)) => {
                    if let Some(tx) = &client {
                        let _ = tx.send(Err(e.into())).await;
                    }
                    break false;
                }
            }
        };
        let mut tail = scrubber.finish();
        if let Some(f) = usage_chunk.as_mut() {
            let mut rest = f.feed(&tail).to_vec();
            rest.extend_from_slice(&f.finish());
            tail = Bytes::from(rest);
        }
        if !tail.is_empty()
            && let Some(tx) = &client
        {
            let _ = tokio::time::timeout(drain, tx.send(Ok(tail))).await;
        }
        let client_gone = client.is_none() || deadline.is_some();
        done(RelayEnd {
            usage: reader.finish(),
            completed,
            client_gone,
        })
        .await;
        // The client's body ends only now, so a client that reads its usage (or calls
        // again) right after a response sees it settled.
        drop(client);
    });
    rx
}
