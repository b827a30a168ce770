//! Responses as the tests read them: status, headers, body, and cookies.

use std::collections::HashMap;

use serde_json::Value;

/// A response, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub json: Value,
    pub text: String,
    pub cookies: Cookies,
}

impl Reply {
    pub async fn from(r: reqwest::Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        let cookies = Cookies::from_headers(&headers);
        Reply {
            status,
            headers,
            json,
            text,
            cookies,
        }
    }

    pub fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key} in {}", self.json))
            .to_string()
    }

    pub fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// A 4xx/5xx must be problem+json with status, title and code.
    pub fn assert_problem(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.header("content-type")
                .starts_with("application/problem+json"),
            "{:?}",
            self.headers
        );
        assert_eq!(self.json["status"], status, "{}", self.text);
        assert!(self.json["title"].is_string(), "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
    }

    /// A refusal at the AI door: the provider's error shape (`{"error": {...}}`, OpenAI's
    /// or Anthropic's), with Tollgate's `code` and a message inside.
    pub fn assert_ai_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(
            self.header("content-type").starts_with("application/json"),
            "{:?}",
            self.headers
        );
        let error = &self.json["error"];
        assert_eq!(error["code"], code, "{}", self.text);
        assert!(
            error["type"].as_str().is_some_and(|t| !t.is_empty()),
            "{}",
            self.text
        );
        assert!(
            error["message"].as_str().is_some_and(|m| m.len() > 5),
            "{}",
            self.text
        );
    }
}

/// `Set-Cookie` values by name: value and lower-cased attributes.
#[derive(Debug, Default, Clone)]
pub struct Cookies(pub HashMap<String, (String, Vec<String>)>);

impl Cookies {
    fn from_headers(h: &reqwest::header::HeaderMap) -> Cookies {
        let mut map = HashMap::new();
        for v in h.get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let mut parts = v.split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            map.insert(
                name.to_string(),
                (
                    value.to_string(),
                    parts.map(|p| p.to_ascii_lowercase()).collect(),
                ),
            );
        }
        Cookies(map)
    }

    pub fn value(&self, name: &str) -> String {
        self.0
            .get(name)
            .map(|(v, _)| v.clone())
            .unwrap_or_else(|| panic!("no cookie {name}: {:?}", self.0))
    }

    pub fn has_attr(&self, name: &str, attr: &str) -> bool {
        self.0.get(name).is_some_and(|(_, a)| {
            a.iter()
                .any(|x| x == attr || x.starts_with(&format!("{attr}=")))
        })
    }

    pub fn attr(&self, name: &str, attr: &str) -> Option<String> {
        self.0
            .get(name)?
            .1
            .iter()
            .find_map(|x| x.strip_prefix(&format!("{attr}=")).map(str::to_string))
    }

    /// The `Cookie` request header a browser would send.
    pub fn header(&self) -> String {
        let mut pairs: Vec<_> = self
            .0
            .iter()
            .filter(|(_, (v, _))| !v.is_empty())
            .map(|(k, (v, _))| format!("{k}={v}"))
            .collect();
        pairs.sort();
        pairs.join("; ")
    }

    /// Merges newer `Set-Cookie`s over these, as a browser would.
    pub fn update(&mut self, newer: &Cookies) {
        for (k, v) in &newer.0 {
            self.0.insert(k.clone(), v.clone());
        }
    }
}
