//! QR codes for authenticator apps, drawn here as SVG (no image stack, no script): the
//! `otpauth://` URI as dark modules on a light square with the quiet zone the
//! specification asks for, readable by phone cameras in light and dark page themes.

use qrcode::QrCode;
use qrcode::render::svg;

/// `text` as an inline `<svg>` element (no XML prolog), or `None` when it is too long
/// for a QR code (the page then shows the secret and the link alone).
pub fn svg(text: &str) -> Option<String> {
    let code = QrCode::new(text.as_bytes()).ok()?;
    let image = code
        .render::<svg::Color<'_>>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .quiet_zone(true)
        .build();
    // The renderer starts with an XML declaration, which has no place inside HTML.
    let start = image.find("<svg")?;
    Some(image[start..].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_otpauth_uri_becomes_an_inline_svg_without_style_attributes() {
        let uri = "otpauth://totp/Tollgate:a%40example.com?secret=JBSWY3DPEHPK3PXP&issuer=Tollgate";
        let svg = super::svg(uri).unwrap();
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"));
        // The pages' CSP allows no inline style.
        assert!(!svg.contains("style="), "{svg}");
        assert!(super::svg(&"x".repeat(8000)).is_none());
    }
}
