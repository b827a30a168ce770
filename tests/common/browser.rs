//! A scripted browser for the hosted pages: a cookie jar per origin (as separate hosts
//! would have), no automatic redirects, `Origin` on form posts, and small helpers to read
//! the hidden fields of a page.

use std::collections::HashMap;

use reqwest::Method;

use super::{Cookies, Reply};

#[derive(Default)]
pub struct Browser {
    http: reqwest::Client,
    /// Cookies by origin (`http://127.0.0.1:port`).
    jars: HashMap<String, Cookies>,
}

fn origin_of(url: &str) -> String {
    let u = url::Url::parse(url).expect("absolute URL");
    u.origin().ascii_serialization()
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            jars: HashMap::new(),
        }
    }

    pub fn cookies(&self, origin_or_url: &str) -> Cookies {
        self.jars
            .get(&origin_of(origin_or_url))
            .cloned()
            .unwrap_or_default()
    }

    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        self.cookies(url)
            .0
            .get(name)
            .map(|(v, _)| v.clone())
            .filter(|v| !v.is_empty())
    }

    pub fn set_cookie(&mut self, url: &str, name: &str, value: &str) {
        self.jars
            .entry(origin_of(url))
            .or_default()
            .0
            .insert(name.to_string(), (value.to_string(), vec![]));
    }

    async fn send(&mut self, method: Method, url: &str, form: Option<&[(&str, &str)]>) -> Reply {
        let origin = origin_of(url);
        self.send_from(&origin.clone(), method, url, form).await
    }

    /// `send` for a page of `from_origin` (the `Origin` of its form posts).
    async fn send_from(
        &mut self,
        from_origin: &str,
        method: Method,
        url: &str,
        form: Option<&[(&str, &str)]>,
    ) -> Reply {
        let origin = origin_of(url);
        let mut req = self.http.request(method, url).header("accept", "text/html");
        let jar = self.jars.entry(origin.clone()).or_default();
        let cookie = jar.header();
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        if let Some(fields) = form {
            let body: String = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(fields.iter().copied())
                .finish();
            req = req
                .header("content-type", "application/x-www-form-urlencoded")
                .header("origin", from_origin)
                .body(body);
        }
        let reply = Reply::from(req.send().await.expect("request")).await;
        self.jars.entry(origin).or_default().update(&reply.cookies);
        reply
    }

    pub async fn get(&mut self, url: &str) -> Reply {
        self.send(Method::GET, url, None).await
    }

    pub async fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Reply {
        self.send(Method::POST, url, Some(fields)).await
    }

    /// A form on a page of another site (`from_origin`) posted to `url`: the browser
    /// sends `url`'s cookies (those it may send cross-site) and names the other origin.
    pub async fn post_form_from(
        &mut self,
        from_origin: &str,
        url: &str,
        fields: &[(&str, &str)],
    ) -> Reply {
        self.send_from(from_origin, Method::POST, url, Some(fields))
            .await
    }

    /// Follows `Location` (made absolute against `from`) with a GET.
    pub async fn follow(&mut self, from: &str, reply: &Reply) -> (String, Reply) {
        let next = absolute(from, reply.header("location"));
        let r = self.get(&next).await;
        (next, r)
    }

    /// A sign-in that finished with nowhere else to go lands on the account's start page
    /// (`/ui/`): checks that redirect and returns that page.
    pub async fn landed_home(&mut self, from: &str, reply: &Reply) -> Reply {
        assert_eq!(reply.status, 303, "{}", reply.text);
        assert_eq!(reply.header("location"), "/ui/");
        let (_, page) = self.follow(from, reply).await;
        assert_eq!(page.status, 200, "{}", page.text);
        page
    }
}

/// `location` resolved against the URL it came from.
pub fn absolute(from: &str, location: &str) -> String {
    assert!(!location.is_empty(), "no Location to follow");
    url::Url::parse(from)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// The value of the hidden input `name` in a page.
pub fn hidden(html: &str, name: &str) -> Option<String> {
    let at = html.find(&format!("name=\"{name}\" value=\""))?;
    let rest = &html[at + name.len() + 15..];
    Some(unescape(&rest[..rest.find('"')?]))
}

/// Undoes the HTML escaping the templates apply to attribute values.
pub fn unescape(s: &str) -> String {
    s.replace("&#x2f;", "/")
        .replace("&#x27;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The query parameters of a URL.
pub fn query_of(url: &str) -> HashMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
