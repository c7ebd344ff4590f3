//! Reading WeChat's flat XML pushes: `<xml><Name>value</Name>…</xml>`.
//!
//! Every push WeChat sends (plain, or the plaintext inside safe mode's
//! `Encrypt`) is one `<xml>` element whose children hold text or CDATA.
//! [`parse`] returns those children as name/value pairs; nested elements
//! (e.g. `ScanCodeInfo`) keep only their own direct text, which is empty.
//! Entities are the five predefined ones and character references; DTDs
//! are not expanded.

use quick_xml::escape::resolve_xml_entity;
use quick_xml::events::Event;
use quick_xml::reader::Reader;

/// The children of the `<xml>` root, in document order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    /// The text of the first child called `name`, if any.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The text of `name`, trimmed, if present and not blank.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).map(str::trim).filter(|v| !v.is_empty())
    }

    /// Every child, in document order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// Why a body is not a WeChat push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlError(pub String);

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "not a WeChat XML push: {}", self.0)
    }
}

impl std::error::Error for XmlError {}

/// Parse `<xml>…</xml>` into its children.
pub fn parse(body: &str) -> Result<Fields, XmlError> {
    let mut reader = Reader::from_str(body);
    let mut fields = Vec::new();
    // 0: before the root, 1: inside <xml>, 2: inside a child, 3+: deeper.
    let mut depth = 0usize;
    let mut current: Option<(String, String)> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|error| XmlError(format!("at byte {}: {error}", reader.error_position())))?;
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
                match depth {
                    0 if name == "xml" => {}
                    0 => return Err(XmlError(format!("the root is <{name}>, not <xml>"))),
                    1 => current = Some((name, String::new())),
                    _ => {}
                }
                depth += 1;
            }
            Event::Empty(empty) => {
                let name = String::from_utf8_lossy(empty.name().as_ref()).into_owned();
                match depth {
                    0 if name == "xml" => return Ok(Fields::default()),
                    0 => return Err(XmlError(format!("the root is <{name}/>, not <xml>"))),
                    1 => fields.push((name, String::new())),
                    _ => {}
                }
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                match depth {
                    0 => return Ok(Fields(fields)),
                    1 => fields.extend(current.take()),
                    _ => {}
                }
            }
            Event::Text(text) if depth == 2 => {
                let text = text
                    .xml10_content()
                    .map_err(|error| XmlError(error.to_string()))?;
                push_text(&mut current, &text);
            }
            Event::CData(data) if depth == 2 => {
                let text = data.decode().map_err(|error| XmlError(error.to_string()))?;
                push_text(&mut current, &text);
            }
            Event::GeneralRef(reference) if depth == 2 => {
                let resolved = if reference.is_char_ref() {
                    reference
                        .resolve_char_ref()
                        .map_err(|error| XmlError(error.to_string()))?
                        .map(String::from)
                } else {
                    let name = reference
                        .decode()
                        .map_err(|error| XmlError(error.to_string()))?;
                    resolve_xml_entity(&name).map(str::to_owned)
                };
                let resolved = resolved.ok_or_else(|| {
                    XmlError(format!(
                        "unknown entity &{};",
                        String::from_utf8_lossy(&reference)
                    ))
                })?;
                push_text(&mut current, &resolved);
            }
            Event::Text(text) if depth <= 1 => {
                let text = text.decode().unwrap_or_default();
                if !text.trim().is_empty() {
                    return Err(XmlError("text outside the elements".into()));
                }
            }
            Event::DocType(_) => return Err(XmlError("a DTD is not allowed".into())),
            Event::Eof if depth == 0 => return Err(XmlError("no <xml> element".into())),
            Event::Eof => return Err(XmlError("the document ends inside <xml>".into())),
            // Declarations, comments, processing instructions, text deeper down.
            _ => {}
        }
    }
}

fn push_text(current: &mut Option<(String, String)>, text: &str) {
    if let Some((_, value)) = current {
        value.push_str(text);
    }
}

/// `<![CDATA[text]]>`, splitting any `]]>` in `text` across two sections.
pub fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_documented_text_message() {
        let fields = parse(
            "<xml>\n  <ToUserName><![CDATA[toUser]]></ToUserName>\n  <FromUserName><![CDATA[fromUser]]></FromUserName>\n  <CreateTime>1348831860</CreateTime>\n  <MsgType><![CDATA[text]]></MsgType>\n  <Content><![CDATA[this is a test]]></Content>\n  <MsgId>1234567890123456</MsgId>\n</xml>",
        )
        .expect("parses");
        assert_eq!(fields.get("ToUserName"), Some("toUser"));
        assert_eq!(fields.get("FromUserName"), Some("fromUser"));
        assert_eq!(fields.get("CreateTime"), Some("1348831860"));
        assert_eq!(fields.get("MsgType"), Some("text"));
        assert_eq!(fields.get("Content"), Some("this is a test"));
        assert_eq!(fields.get("MsgId"), Some("1234567890123456"));
        assert_eq!(fields.get("Nope"), None);
        assert_eq!(fields.iter().count(), 6);
    }

    #[test]
    fn decodes_entities_char_refs_and_split_cdata() {
        let fields = parse(
            "<?xml version=\"1.0\"?><xml><A>a &amp; b &lt;c&gt; &#x4F60;&#22909;</A><B>x<![CDATA[<y>]]>z</B><C/><D></D></xml>",
        )
        .expect("parses");
        assert_eq!(fields.get("A"), Some("a & b <c> 你好"));
        assert_eq!(fields.get("B"), Some("x<y>z"));
        assert_eq!(fields.get("C"), Some(""));
        assert_eq!(fields.non_empty("D"), None);
    }

    #[test]
    fn keeps_only_direct_text_of_nested_elements() {
        let fields = parse(
            "<xml><Event><![CDATA[scancode_push]]></Event><ScanCodeInfo><ScanType><![CDATA[qrcode]]></ScanType></ScanCodeInfo><After>1</After></xml>",
        )
        .expect("parses");
        assert_eq!(fields.get("Event"), Some("scancode_push"));
        assert_eq!(fields.get("ScanCodeInfo"), Some(""));
        assert_eq!(fields.get("ScanType"), None);
        assert_eq!(fields.get("After"), Some("1"));
    }

    #[test]
    fn cdata_round_trips_even_with_its_terminator_inside() {
        let tricky = "a ]]> b <c> & d";
        let fields = parse(&format!("<xml><T>{}</T></xml>", cdata(tricky))).expect("parses");
        assert_eq!(fields.get("T"), Some(tricky));
    }

    #[test]
    fn refuses_what_is_not_a_push() {
        for (body, needle) in [
            ("", "no <xml>"),
            ("{\"json\":true}", "outside"),
            ("<root><A>1</A></root>", "not <xml>"),
            ("<xml><A>1</A>", "ends inside"),
            ("<xml><A>1</B></xml>", "at byte"),
            ("<xml><A>&bogus;</A></xml>", "bogus"),
            (
                "<!DOCTYPE xml [<!ENTITY e \"x\">]><xml><A>&e;</A></xml>",
                "DTD",
            ),
        ] {
            let error = parse(body).expect_err(body);
            assert!(error.to_string().contains(needle), "{body}: {error}");
        }
        assert_eq!(parse("<xml/>"), Ok(Fields::default()));
    }
}
