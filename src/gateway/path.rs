//! Request-path normalisation: the one form of a path that policy is decided on and that
//! the upstream receives.
//!
//! A path reaches a route's policy only after every trick that could make the gateway and
//! the upstream disagree about it is undone: percent-encoded unreserved characters are
//! decoded (`%2e%2e` is `..`), `.` and `..` segments are resolved (RFC 3986 §5.2.4) and
//! empty segments (`//`) collapse. What cannot be normalised unambiguously is refused:
//! encoded slashes and backslashes (`%2f`, `%5c`), a raw backslash, NUL, bad
//! percent-escapes, escapes that are not UTF-8 (overlong `%C0%AE` is `.` to a lenient
//! decoder), `..` climbing above the root, and `;` (path parameters: Java servers
//! strip `;…` from each segment before resolving, so `/pub/..;/admin` or `/admin;x/` would
//! mean one path here and another there). The upstream is sent the normalised
//! path, so it serves exactly the resource whose policy was checked.

use std::borrow::Cow;

use crate::text;

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Encoded `/` or `\`, a raw `\` or `;`, NUL or a control character.
    Ambiguous,
    /// A `%` not followed by two hex digits.
    BadEscape,
    /// Bytes (escaped or raw) that are not UTF-8: overlong forms such as `%C0%AE`, which
    /// a lenient decoder reads as `.`.
    NotUtf8,
    /// `..` above the root.
    AboveRoot,
}

/// Normalises an origin-form path (no query). The result starts with `/`; a trailing
/// slash is kept because upstreams may treat `/docs/` and `/docs` differently.
pub fn normalize(raw: &str) -> Result<String, PathError> {
    let decoded = decode_unreserved(raw)?;
    let mut out: Vec<&str> = Vec::new();
    let mut trailing_slash = false;
    for segment in decoded.split('/') {
        trailing_slash = false;
        match segment {
            "" | "." => trailing_slash = true,
            ".." => {
                out.pop().ok_or(PathError::AboveRoot)?;
                trailing_slash = true;
            }
            s => out.push(s),
        }
    }
    let mut path = String::with_capacity(decoded.len());
    for segment in &out {
        path.push('/');
        path.push_str(segment);
    }
    if out.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

/// Decodes `%XX` escapes of unreserved characters (RFC 3986 §2.3) and upper-cases the hex
/// of every other escape, refusing the ones that would change the path's structure.
fn decode_unreserved(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    // The run of non-ASCII bytes being read, which must be one or more UTF-8 characters.
    let mut run: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let decoded = if b == b'%' {
            bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        } else {
            Some(b)
        };
        match decoded {
            Some(v) if !v.is_ascii() => run.push(v),
            _ if !run.is_empty() => {
                std::str::from_utf8(&run).map_err(|_| PathError::NotUtf8)?;
                run.clear();
            }
            _ => {}
        }
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(PathError::BadEscape)?;
            let value = std::str::from_utf8(hex)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or(PathError::BadEscape)?;
            match value {
                b'/' | b'\\' | 0..=0x1f | 0x7f => return Err(PathError::Ambiguous),
                v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                    out.push(v as char)
                }
                v => {
                    out.push('%');
                    out.push_str(&format!("{v:02X}"));
                }
            }
            i += 3;
        } else {
            if b == b'\\' || b == b';' || b.is_ascii_control() {
                return Err(PathError::Ambiguous);
            }
            if b.is_ascii() {
                out.push(b as char);
            } else {
                // Raw non-ASCII bytes (HTTP/1.1 parsers let them through) are written as the
                // escapes they stand for, the one spelling every later step reads.
                out.push_str(&format!("%{b:02X}"));
            }
            i += 1;
        }
    }
    std::str::from_utf8(&run).map_err(|_| PathError::NotUtf8)?;
    Ok(out)
}

/// The spelling-insensitive form of a normalised path that route and rule matching also
/// compares: ASCII letters in lower case, one trailing slash dropped (`/Reports/` →
/// `/reports`), and the percent-encoded characters of [`text::folds_to_ascii`] written as the
/// letters they fold to. Many upstreams treat these spellings as one resource: Express and
/// ASP.NET Core match routes ignoring case, Express and Flask (`strict_slashes = False`)
/// ignoring a trailing slash. Borrowed when the path is already in this form.
pub fn fold(path: &str) -> Cow<'_, str> {
    let bytes = path.as_bytes();
    let trailing = path.len() > 1 && path.ends_with('/');
    if !trailing && !bytes.iter().any(|b| b.is_ascii_uppercase() || *b == b'%') {
        return Cow::Borrowed(path);
    }
    let path = if trailing {
        &path[..path.len() - 1]
    } else {
        path
    };
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(at) = rest.find('%') {
        out.push_str(&rest[..at].to_ascii_lowercase());
        rest = &rest[at..];
        match decode_escaped_char(rest) {
            Some((c, len)) => {
                match text::folds_to_ascii(c) {
                    Some(to) => out.push_str(to),
                    None => out.push_str(&rest[..len].to_ascii_lowercase()),
                }
                rest = &rest[len..];
            }
            None => {
                out.push('%');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(&rest.to_ascii_lowercase());
    Cow::Owned(out)
}

/// The character spelled by the `%XX` escapes at the start of `s` (one to four of them,
/// UTF-8), and how many bytes of `s` they take.
fn decode_escaped_char(s: &str) -> Option<(char, usize)> {
    let byte_at = |i: usize| -> Option<u8> {
        let esc = s.get(i * 3..i * 3 + 3)?;
        let hex = esc.strip_prefix('%')?;
        u8::from_str_radix(hex, 16).ok()
    };
    let first = byte_at(0)?;
    let len = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => return None,
    };
    let mut buf = [0u8; 4];
    for (i, slot) in buf.iter_mut().enumerate().take(len) {
        *slot = byte_at(i)?;
    }
    let c = std::str::from_utf8(&buf[..len]).ok()?.chars().next()?;
    Some((c, len * 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_must_spell_utf8() {
        assert_eq!(normalize("/caf%C3%A9/x"), Ok("/caf%C3%A9/x".to_string()));
        assert_eq!(normalize("/caf\u{e9}/x"), Ok("/caf%C3%A9/x".to_string()));
        for bad in [
            "/pub/%c0%ae%c0%ae/api/admin/x",
            "/pub/%c0%af../api",
            "/pub/%C3",
            "/pub/%C3/x",
            "/pub/%FF",
            "/pub/%E2%82",
        ] {
            assert_eq!(normalize(bad), Err(PathError::NotUtf8), "{bad}");
        }
    }

    #[test]
    fn folding_ignores_case_a_trailing_slash_and_letters_that_fold_to_ascii() {
        for (path, want) in [
            ("/", "/"),
            ("/api/x", "/api/x"),
            ("/API/ADMIN/users", "/api/admin/users"),
            ("/reports/", "/reports"),
            ("/Reports/", "/reports"),
            ("/adm%C4%B1n", "/admin"),
            ("/%C5%BFecret", "/secret"),
            ("/%E2%84%AAeys", "/keys"),
            ("/%C4%B0nbox", "/inbox"),
            ("/stra%C3%9Fe", "/strasse"),
            ("/caf%C3%A9", "/caf%c3%a9"),
            ("/a%20b", "/a%20b"),
        ] {
            assert_eq!(fold(path), want, "{path}");
        }
        assert!(matches!(fold("/api/x"), Cow::Borrowed(_)));
    }

    #[test]
    fn resolves_dots_and_empty_segments() {
        for (raw, want) in [
            ("/", "/"),
            ("", "/"),
            ("/a/b", "/a/b"),
            ("/a/b/", "/a/b/"),
            ("//a///b", "/a/b"),
            ("/a/./b", "/a/b"),
            ("/a/../b", "/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/.", "/a/b/"),
            ("/api/docs/../../admin", "/admin"),
            ("/api/%2e%2e/admin", "/admin"),
            ("/api/%2E%2e/admin", "/admin"),
            ("/api/.%2e/admin", "/admin"),
            ("/%61pi/docs", "/api/docs"),
            ("/a%20b/c%3f", "/a%20b/c%3F"),
            ("/caf\u{e9}", "/caf%C3%A9"),
            ("/caf%c3%a9", "/caf%C3%A9"),
        ] {
            assert_eq!(normalize(raw), Ok(want.to_string()), "{raw}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_normalised() {
        for (raw, err) in [
            ("/..", PathError::AboveRoot),
            ("/a/../..", PathError::AboveRoot),
            ("/%2e%2e/x", PathError::AboveRoot),
            ("/a%2fb", PathError::Ambiguous),
            ("/a%2Fb", PathError::Ambiguous),
            ("/a%5cb", PathError::Ambiguous),
            ("/a\\..\\b", PathError::Ambiguous),
            ("/a%00b", PathError::Ambiguous),
            ("/a%0ab", PathError::Ambiguous),
            ("/pub/..;/admin", PathError::Ambiguous),
            ("/admin;jsessionid=1/x", PathError::Ambiguous),
            ("/a%zz", PathError::BadEscape),
            ("/a%2", PathError::BadEscape),
        ] {
            assert_eq!(normalize(raw), Err(err), "{raw}");
        }
    }
}
