//! The markup parsers on their own.

use serde_json::json;

use crate::fake_telegram::entities::parse;

#[test]
fn html_offsets_are_utf16() {
    let p = parse("😀 <b>ü😀</b>", Some("HTML")).unwrap();
    assert_eq!(p.text, "😀 ü😀");
    assert_eq!(
        p.entities,
        vec![json!({"offset": 3, "length": 3, "type": "bold"})]
    );
}

#[test]
fn html_tags_and_attributes() {
    let p = parse(
        "<pre><code class=\"language-rust\">fn x() {}</code></pre><tg-spoiler>s</tg-spoiler>\
         <span class='tg-spoiler'>t</span><blockquote expandable>q</blockquote>&#33;&#x41;&apos;",
        Some("HTML"),
    )
    .unwrap();
    assert_eq!(p.text, "fn x() {}stq!A&apos;");
    let kinds: Vec<&str> = p
        .entities
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["pre", "spoiler", "spoiler", "expandable_blockquote"]
    );
    assert_eq!(p.entities[0]["language"], "rust");
    assert!(parse("<span>x</span>", Some("HTML")).is_err());
    assert!(parse("<br>", Some("HTML")).unwrap_err().contains("\"br\""));
    assert!(parse("</b>", Some("HTML")).is_err());
    assert!(parse("<a href=\"x>y</a>", Some("HTML")).is_err());
    assert_eq!(parse("<B>x</B>", Some("HTML")).unwrap().text, "x");
}

#[test]
fn markdown_v2_links_code_and_escapes() {
    let p = parse(
        "[a\\.b](https://x.test/a\\)b) ```py\nprint(1)``` ||s|| __u__ ~d~",
        Some("MarkdownV2"),
    )
    .unwrap();
    assert_eq!(p.text, "a.b print(1) s u d");
    assert_eq!(
        p.entities[0],
        json!({"offset": 0, "length": 3, "type": "text_link", "url": "https://x.test/a)b"})
    );
    assert_eq!(
        p.entities[1],
        json!({"offset": 4, "length": 8, "type": "pre", "language": "py"})
    );
    let kinds: Vec<&str> = p
        .entities
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["text_link", "pre", "spoiler", "underline", "strikethrough"]
    );
    let quote = parse(">quoted\nplain", Some("MarkdownV2")).unwrap();
    assert_eq!(quote.text, "quoted\nplain");
    assert_eq!(
        quote.entities,
        vec![json!({"offset": 0, "length": 6, "type": "blockquote"})]
    );
    assert!(parse("`open", Some("MarkdownV2"))
        .unwrap_err()
        .contains("Code entity"));
    assert!(parse("_x", Some("MarkdownV2"))
        .unwrap_err()
        .contains("Italic entity at byte offset 0"));
    assert!(parse("*a _b* c_", Some("MarkdownV2")).is_err());
    assert!(parse("1+1=2", Some("MarkdownV2"))
        .unwrap_err()
        .contains("'+'"));
}

#[test]
fn legacy_markdown_and_plain_text() {
    let p = parse("*b* _i_ `c` [l](http://u) a.b-c!", Some("Markdown")).unwrap();
    assert_eq!(p.text, "b i c l a.b-c!");
    assert_eq!(p.entities.len(), 4);
    assert!(parse("*open", Some("Markdown"))
        .unwrap_err()
        .contains("byte offset 0"));
    let plain = parse("<b>*raw*</b>", None).unwrap();
    assert_eq!(plain.text, "<b>*raw*</b>");
    assert!(plain.entities.is_empty());
}
