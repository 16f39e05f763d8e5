//! XML escaping: the one escaper of every XML file the twin writes
//! (`junit.xml` of `run`, `sweep`, `hil-rig compare` and `hil-rig test`).

/// `s` escaped for XML character data and for attribute values in double or
/// single quotes: `&`, `<`, `>`, `"` and `'` as entities; characters XML 1.0
/// does not allow (control characters other than tab, line feed and carriage
/// return; U+FFFE, U+FFFF) dropped, so that the file always parses.
pub fn escape(s: &str) -> String {
    escape_with(s, false)
}

/// As [`escape`], for an attribute value: tab, line feed and carriage return
/// also as character references, which a parser keeps (it turns literal ones
/// in an attribute into spaces).
pub fn escape_attr(s: &str) -> String {
    escape_with(s, true)
}

fn escape_with(s: &str, attr: bool) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\t' if attr => o.push_str("&#9;"),
            '\n' if attr => o.push_str("&#10;"),
            '\r' if attr => o.push_str("&#13;"),
            '\t' | '\n' | '\r' => o.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_escaped_and_forbidden_characters_dropped() {
        assert_eq!(escape(r#"a < b & c > "d" 'e'"#), "a &lt; b &amp; c &gt; &quot;d&quot; &apos;e&apos;");
        assert_eq!(escape("x\u{0}\u{1b}y\u{FFFF}"), "xy");
        assert_eq!(escape("µs, °C, ≤ 1300 A\n\tnext"), "µs, °C, ≤ 1300 A\n\tnext");
        assert_eq!(escape_attr("one\ntwo\tthree\r"), "one&#10;two&#9;three&#13;");
    }

    #[test]
    fn escaped_text_parses_back_to_the_original() {
        let original = "line 1 <x> & \"quoted\" 'single'\nline 2\tµ";
        let doc = format!(r#"<a v="{}" w='{}'>{}</a>"#, escape_attr(original), escape_attr(original), escape(original));
        let parsed = roxmltree::Document::parse(&doc).unwrap();
        let a = parsed.root_element();
        assert_eq!(a.attribute("v"), Some(original));
        assert_eq!(a.attribute("w"), Some(original));
        assert_eq!(a.text(), Some(original));
    }
}
