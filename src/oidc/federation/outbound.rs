//! The HTTP client the openidconnect and oauth2 crates call for discovery, keys, token
//! exchanges and user endpoints: Tollgate's one outbound client (`crate::outbound`), with bounded
//! responses and no redirects followed (a provider that redirects its token endpoint is
//! misconfigured, and following would leak the code or secret elsewhere).

use openidconnect::{AsyncHttpClient, HttpRequest, HttpResponse};
use std::future::Future;
use std::pin::Pin;

use crate::outbound::{Outbound, SendError};

/// Discovery documents, key sets and token responses are small; more is not one.
const MAX_RESPONSE_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct OauthHttp(pub Outbound);

impl OauthHttp {
    pub async fn send(&self, req: HttpRequest) -> Result<HttpResponse, SendError> {
        self.0.fetch(req, MAX_RESPONSE_BYTES).await
    }
}

impl<'c> AsyncHttpClient<'c> for OauthHttp {
    type Error = SendError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, SendError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(self.send(request))
    }
}
