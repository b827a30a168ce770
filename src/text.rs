//! Unicode text that must not look like something it is not: the pieces the gateway's
//! path matching, email normalisation and the AI guards share. Invisible characters that
//! make two strings look alike ([`is_default_ignorable`]), letters that case-insensitive
//! comparisons read as ASCII ([`folds_to_ascii`]), and the canonical form a guard checks
//! ([`canonical`]).

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization;

/// Default_Ignorable_Code_Point (Unicode's DerivedCoreProperties): invisible, so two
/// addresses differing only in them look identical.
const DEFAULT_IGNORABLE: [(char, char); 17] = [
    ('\u{00AD}', '\u{00AD}'),
    ('\u{034F}', '\u{034F}'),
    ('\u{061C}', '\u{061C}'),
    ('\u{115F}', '\u{1160}'),
    ('\u{17B4}', '\u{17B5}'),
    ('\u{180B}', '\u{180F}'),
    ('\u{200B}', '\u{200F}'),
    ('\u{202A}', '\u{202E}'),
    ('\u{2060}', '\u{206F}'),
    ('\u{3164}', '\u{3164}'),
    ('\u{FE00}', '\u{FE0F}'),
    ('\u{FEFF}', '\u{FEFF}'),
    ('\u{FFA0}', '\u{FFA0}'),
    ('\u{FFF0}', '\u{FFF8}'),
    ('\u{1BCA0}', '\u{1BCA3}'),
    ('\u{1D173}', '\u{1D17A}'),
    ('\u{E0000}', '\u{E0FFF}'),
];

pub fn is_default_ignorable(c: char) -> bool {
    DEFAULT_IGNORABLE
        .iter()
        .any(|(lo, hi)| (*lo..=*hi).contains(&c))
}

/// `s` without default-ignorable code points.
pub fn without_ignorables(s: &str) -> String {
    s.chars().filter(|c| !is_default_ignorable(*c)).collect()
}

/// Characters that frameworks matching routes without regard to case read as ASCII
/// letters: the four whose simple case mapping is ASCII (.NET's `OrdinalIgnoreCase` reads
/// `ı` as `I`, Java's `equalsIgnoreCase` reads `İ` as `i` and the Kelvin sign as `k`), and those whose
/// full case folding is ASCII (ICU, Python's `casefold`).
const FOLDS_TO_ASCII: [(char, &str); 13] = [
    ('\u{df}', "ss"),   // ß
    ('\u{130}', "i"),   // İ
    ('\u{131}', "i"),   // ı
    ('\u{17f}', "s"),   // ſ
    ('\u{1e9e}', "ss"), // ẞ
    ('\u{212a}', "k"),  // Kelvin sign
    ('\u{fb00}', "ff"), // ligatures ﬀ ﬁ ﬂ ﬃ ﬄ ﬅ ﬆ
    ('\u{fb01}', "fi"),
    ('\u{fb02}', "fl"),
    ('\u{fb03}', "ffi"),
    ('\u{fb04}', "ffl"),
    ('\u{fb05}', "st"),
    ('\u{fb06}', "st"),
];

/// The ASCII letters `c` is read as by case-insensitive comparisons, if it is one of
/// [`FOLDS_TO_ASCII`].
pub fn folds_to_ascii(c: char) -> Option<&'static str> {
    FOLDS_TO_ASCII
        .iter()
        .find(|(from, _)| *from == c)
        .map(|(_, to)| *to)
}

/// `s` without invisible characters and in NFKC: fullwidth, mathematical and other
/// compatibility forms become the characters they stand for. Borrowed when `s` is ASCII.
pub fn canonical(s: &str) -> Cow<'_, str> {
    if s.is_ascii() {
        return Cow::Borrowed(s);
    }
    Cow::Owned(without_ignorables(s).nfkc().collect())
}

/// [`canonical`], then every letter of [`FOLDS_TO_ASCII`] written in ASCII: what a
/// pattern meant for English text must also find `forbıdden` and `ﬁle`.
pub fn ascii_folded(s: &str) -> Cow<'_, str> {
    let canonical = canonical(s);
    if !canonical.chars().any(|c| folds_to_ascii(c).is_some()) {
        return canonical;
    }
    let mut out = String::with_capacity(canonical.len());
    for c in canonical.chars() {
        match folds_to_ascii(c) {
            Some(to) => out.push_str(to),
            None => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn look_alikes_come_out_plain() {
        assert_eq!(canonical("plain text"), "plain text");
        assert!(matches!(canonical("plain"), Cow::Borrowed(_)));
        assert_eq!(canonical("ＦＯＲＢＩＤＤＥＮ"), "FORBIDDEN");
        assert_eq!(canonical("for\u{200B}bid\u{00AD}den"), "forbidden");
        assert_eq!(canonical("alice＠example．com"), "alice@example.com");
        assert_eq!(
            ascii_folded("forb\u{131}dden FORB\u{130}DDEN \u{FB01}le"),
            "forbidden FORBiDDEN file"
        );
    }
}
