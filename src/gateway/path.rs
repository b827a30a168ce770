//! Request-path normalisation: the one form of a path that policy is decided on and that
//! the upstream receives.
//!
//! A path reaches a route's policy only after every trick that could make the gateway and
//! the upstream disagree about it is undone: percent-encoded unreserved characters are
//! decoded (`%2e%2e` is `..`), `.` and `..` segments are resolved (RFC 3986 §5.2.4) and
//! empty segments (`//`) collapse. What cannot be normalised unambiguously is refused:
//! encoded slashes and backslashes (`%2f`, `%5c`), a raw backslash, NUL, bad
//! percent-escapes, `..` climbing above the root, and `;` (path parameters: Java servers
//! strip `;…` from each segment before resolving, so `/pub/..;/admin` or `/admin;x/` would
//! mean one path here and another there). The upstream is sent the normalised
//! path, so it serves exactly the resource whose policy was checked.

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Encoded `/` or `\`, a raw `\` or `;`, NUL or a control character.
    Ambiguous,
    /// A `%` not followed by two hex digits.
    BadEscape,
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
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
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
            // The URI parser only lets visible ASCII through; anything else is kept as is.
            out.push(b as char);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

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
