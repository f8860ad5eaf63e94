//! A small document tree: parsed from untrusted input with limits, or built
//! by our code, and written back out.

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::ns;

/// A child of an element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    Text(String),
    /// Kept so that a document reads back as written; canonicalisation
    /// (without comments) drops them, and so does every reader of values.
    Comment(String),
    ProcessingInstruction {
        target: String,
        data: String,
    },
}

/// An attribute with its prefix as written and its namespace resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    pub prefix: Option<String>,
    pub local: String,
    /// `None` for unprefixed attributes (they take no default namespace).
    pub ns: Option<String>,
    pub value: String,
}

/// An element: its name as written (prefix and local part), its resolved
/// namespace, the namespace declarations written on it, its other
/// attributes in document order, and its children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub prefix: Option<String>,
    pub local: String,
    pub ns: Option<String>,
    /// `(prefix, uri)`; `None` is the default namespace, an empty URI
    /// undeclares it.
    pub ns_decls: Vec<(Option<String>, String)>,
    pub attrs: Vec<Attr>,
    pub children: Vec<Node>,
}

/// Bounds on what [`parse`] accepts.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_depth: usize,
    pub max_nodes: usize,
    pub max_attributes: usize,
}

impl Default for Limits {
    /// Generous for protocol messages (an AuthnRequest is a few KiB).
    fn default() -> Self {
        Limits { max_bytes: 256 * 1024, max_depth: 32, max_nodes: 4096, max_attributes: 64 }
    }
}

impl Limits {
    /// For metadata, including federation aggregates of thousands of SPs.
    pub fn metadata() -> Self {
        Limits { max_bytes: 64 * 1024 * 1024, max_depth: 48, max_nodes: 4_000_000, max_attributes: 64 }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("the document is larger than {0} bytes")]
    TooLarge(usize),
    #[error("the document is nested deeper than {0} elements")]
    TooDeep(usize),
    #[error("the document has more than {0} nodes")]
    TooManyNodes(usize),
    #[error("an element has more than {0} attributes")]
    TooManyAttributes(usize),
    #[error("a DOCTYPE is not accepted (no DTD, no entities)")]
    Doctype,
    #[error("undeclared entity &{0};")]
    Entity(String),
    #[error("undeclared namespace prefix {0}")]
    UnboundPrefix(String),
    #[error("not well-formed XML: {0}")]
    Malformed(String),
}

fn malformed(e: impl std::fmt::Display) -> ParseError {
    ParseError::Malformed(e.to_string())
}

impl Element {
    /// An element in namespace `ns` written with `prefix`; the declaration
    /// is the caller's business ([`Element::declare`]).
    pub fn new(prefix: Option<&str>, local: &str, ns: Option<&str>) -> Self {
        Element {
            prefix: prefix.map(str::to_owned),
            local: local.to_owned(),
            ns: ns.map(str::to_owned),
            ..Element::default()
        }
    }

    pub fn declare(mut self, prefix: Option<&str>, uri: &str) -> Self {
        self.ns_decls.push((prefix.map(str::to_owned), uri.to_owned()));
        self
    }

    /// An unprefixed attribute.
    pub fn attr(mut self, local: &str, value: impl Into<String>) -> Self {
        self.attrs.push(Attr { prefix: None, local: local.to_owned(), ns: None, value: value.into() });
        self
    }

    /// A namespaced attribute (e.g. `xsi:type`).
    pub fn ns_attr(mut self, prefix: &str, local: &str, ns: &str, value: impl Into<String>) -> Self {
        self.attrs.push(Attr {
            prefix: Some(prefix.to_owned()),
            local: local.to_owned(),
            ns: Some(ns.to_owned()),
            value: value.into(),
        });
        self
    }

    pub fn child(mut self, child: Element) -> Self {
        self.children.push(Node::Element(child));
        self
    }

    pub fn text(mut self, text: impl Into<String>) -> Self {
        self.children.push(Node::Text(text.into()));
        self
    }

    /// Whether this element is `{ns}local`.
    pub fn is(&self, ns: &str, local: &str) -> bool {
        self.local == local && self.ns.as_deref() == Some(ns)
    }

    /// The value of an unprefixed attribute.
    pub fn attribute(&self, local: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.is_none() && a.local == local).map(|a| a.value.as_str())
    }

    /// The value of a namespaced attribute.
    pub fn ns_attribute(&self, ns: &str, local: &str) -> Option<&str> {
        self.attrs.iter().find(|a| a.ns.as_deref() == Some(ns) && a.local == local).map(|a| a.value.as_str())
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|c| match c {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// Child elements named `{ns}local`.
    pub fn children_named<'a>(&'a self, ns: &'a str, local: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.elements().filter(move |e| e.is(ns, local))
    }

    /// The first child element named `{ns}local`.
    pub fn first(&self, ns: &str, local: &str) -> Option<&Element> {
        self.elements().find(|e| e.is(ns, local))
    }

    /// The text content of the element's own text children (comments and
    /// processing instructions are skipped, so a comment cannot split or
    /// truncate a value). `None` when the element has child elements.
    pub fn text_content(&self) -> Option<String> {
        let mut out = String::new();
        for c in &self.children {
            match c {
                Node::Text(t) => out.push_str(t),
                Node::Element(_) => return None,
                Node::Comment(_) | Node::ProcessingInstruction { .. } => {}
            }
        }
        Some(out)
    }

    /// Every element of the subtree, this one first, in document order.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = vec![self];
        let mut i = 0;
        while i < out.len() {
            let e = out[i];
            // Depth-first order is not needed by callers; breadth-first keeps
            // this iterative.
            out.extend(e.elements());
            i += 1;
        }
        out
    }

    /// The document written out (no XML declaration).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(1024);
        write_element(self, &mut out);
        out
    }
}

/// `prefix:local` (or `local`), shared with canonicalisation.
pub(crate) fn push_qname(prefix: Option<&str>, local: &str, out: &mut String) {
    if let Some(p) = prefix {
        out.push_str(p);
        out.push(':');
    }
    out.push_str(local);
}

/// `<?target data?>`, shared with canonicalisation.
pub(crate) fn push_pi(target: &str, data: &str, out: &mut String) {
    out.push_str("<?");
    out.push_str(target);
    if !data.is_empty() {
        out.push(' ');
        out.push_str(data);
    }
    out.push_str("?>");
}

fn qname(prefix: &Option<String>, local: &str, out: &mut String) {
    push_qname(prefix.as_deref(), local, out);
}

fn write_element(e: &Element, out: &mut String) {
    out.push('<');
    qname(&e.prefix, &e.local, out);
    for (prefix, uri) in &e.ns_decls {
        match prefix {
            Some(p) => {
                out.push_str(" xmlns:");
                out.push_str(p);
            }
            None => out.push_str(" xmlns"),
        }
        out.push_str("=\"");
        escape_attr(uri, out);
        out.push('"');
    }
    for a in &e.attrs {
        out.push(' ');
        qname(&a.prefix, &a.local, out);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    if e.children.is_empty() {
        out.push_str("/>");
        return;
    }
    out.push('>');
    for c in &e.children {
        match c {
            Node::Element(child) => write_element(child, out),
            Node::Text(t) => escape_text(t, out),
            Node::Comment(c) => {
                out.push_str("<!--");
                out.push_str(c);
                out.push_str("-->");
            }
            Node::ProcessingInstruction { target, data } => push_pi(target, data, out),
        }
    }
    out.push_str("</");
    qname(&e.prefix, &e.local, out);
    out.push('>');
}

/// Text escaping shared with canonicalisation (which uses the same rules).
pub(crate) fn escape_text(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// Attribute-value escaping shared with canonicalisation.
pub(crate) fn escape_attr(s: &str, out: &mut String) {
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            c => out.push(c),
        }
    }
}

/// One element being parsed: its in-scope namespace bindings are the
/// declarations of the open elements.
struct Open {
    element: Element,
}

/// Parses a whole document. A DOCTYPE is refused, so is any entity but the
/// five predefined ones; every prefix must be declared; the limits bound
/// memory and time whatever the input.
pub fn parse(input: &[u8], limits: Limits) -> Result<Element, ParseError> {
    if input.len() > limits.max_bytes {
        return Err(ParseError::TooLarge(limits.max_bytes));
    }
    let text = std::str::from_utf8(input).map_err(|_| malformed("the document is not UTF-8"))?;
    let mut reader = Reader::from_str(text);
    reader.config_mut().expand_empty_elements = true;
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<Element> = None;
    let mut nodes = 0usize;
    loop {
        let event = reader.read_event().map_err(malformed)?;
        match event {
            Event::Start(start) => {
                nodes += 1;
                if nodes > limits.max_nodes {
                    return Err(ParseError::TooManyNodes(limits.max_nodes));
                }
                if stack.len() >= limits.max_depth {
                    return Err(ParseError::TooDeep(limits.max_depth));
                }
                if root.is_some() {
                    return Err(malformed("more than one root element"));
                }
                let element = open_element(&start, &stack, limits)?;
                stack.push(Open { element });
            }
            Event::End(_) => {
                let done = stack.pop().ok_or_else(|| malformed("an end tag without a start tag"))?.element;
                match stack.last_mut() {
                    Some(parent) => parent.element.children.push(Node::Element(done)),
                    None => root = Some(done),
                }
            }
            Event::Empty(_) => return Err(malformed("unexpected empty element event")),
            Event::Text(t) => {
                let s = t.xml10_content().map_err(malformed)?;
                push_text(&mut stack, &s, &mut nodes, limits)?;
            }
            Event::CData(c) => {
                let raw = c.into_inner();
                let s = std::str::from_utf8(&raw).map_err(malformed)?;
                push_text(&mut stack, &s.replace("\r\n", "\n").replace('\r', "\n"), &mut nodes, limits)?;
            }
            Event::GeneralRef(r) => {
                let name = r.decode().map_err(malformed)?;
                let c = resolve_reference(&name)?;
                push_text(&mut stack, c.encode_utf8(&mut [0u8; 4]), &mut nodes, limits)?;
            }
            Event::Comment(c) => {
                if let Some(open) = stack.last_mut() {
                    let s = std::str::from_utf8(&c).map_err(malformed)?.to_owned();
                    count(&mut nodes, limits)?;
                    open.element.children.push(Node::Comment(s));
                }
            }
            Event::PI(pi) => {
                if let Some(open) = stack.last_mut() {
                    count(&mut nodes, limits)?;
                    let target = std::str::from_utf8(pi.target()).map_err(malformed)?.to_owned();
                    let data = std::str::from_utf8(pi.content()).map_err(malformed)?.trim_start().to_owned();
                    open.element.children.push(Node::ProcessingInstruction { target, data });
                }
            }
            Event::DocType(_) => return Err(ParseError::Doctype),
            Event::Decl(d) => {
                if let Some(Ok(enc)) = d.encoding()
                    && !enc.eq_ignore_ascii_case(b"utf-8")
                {
                    return Err(malformed("only UTF-8 documents are accepted"));
                }
            }
            Event::Eof => break,
        }
    }
    if !stack.is_empty() {
        return Err(malformed("unclosed element"));
    }
    root.ok_or_else(|| malformed("no root element"))
}

fn count(nodes: &mut usize, limits: Limits) -> Result<(), ParseError> {
    *nodes += 1;
    if *nodes > limits.max_nodes { Err(ParseError::TooManyNodes(limits.max_nodes)) } else { Ok(()) }
}

fn push_text(stack: &mut [Open], s: &str, nodes: &mut usize, limits: Limits) -> Result<(), ParseError> {
    let Some(open) = stack.last_mut() else {
        // Outside the root only whitespace may appear.
        return if s.chars().all(|c| matches!(c, ' ' | '\t' | '\n' | '\r')) {
            Ok(())
        } else {
            Err(malformed("text outside the root element"))
        };
    };
    // Adjacent text (split by references or CDATA) is one text node.
    if let Some(Node::Text(t)) = open.element.children.last_mut() {
        t.push_str(s);
        return Ok(());
    }
    count(nodes, limits)?;
    open.element.children.push(Node::Text(s.to_owned()));
    Ok(())
}

fn lookup<'a>(stack: &'a [Open], own: &'a [(Option<String>, String)], prefix: Option<&str>) -> Option<&'a str> {
    if prefix == Some("xml") {
        return Some(ns::XML);
    }
    let find = |decls: &'a [(Option<String>, String)]| {
        decls.iter().rev().find(|(p, _)| p.as_deref() == prefix).map(|(_, uri)| uri.as_str())
    };
    find(own).or_else(|| stack.iter().rev().find_map(|o| find(&o.element.ns_decls))).filter(|uri| !uri.is_empty())
}

fn split_qname(raw: &[u8]) -> Result<(Option<String>, String), ParseError> {
    let s = std::str::from_utf8(raw).map_err(malformed)?;
    match s.split_once(':') {
        Some((p, l)) if !p.is_empty() && !l.is_empty() && !l.contains(':') => Ok((Some(p.to_owned()), l.to_owned())),
        None if !s.is_empty() => Ok((None, s.to_owned())),
        _ => Err(malformed(format!("bad name {s}"))),
    }
}

fn open_element(start: &BytesStart<'_>, stack: &[Open], limits: Limits) -> Result<Element, ParseError> {
    let (prefix, local) = split_qname(start.name().as_ref())?;
    let mut ns_decls = Vec::new();
    let mut raw_attrs = Vec::new();
    for (i, attr) in start.attributes().with_checks(true).enumerate() {
        if i >= limits.max_attributes {
            return Err(ParseError::TooManyAttributes(limits.max_attributes));
        }
        let attr = attr.map_err(malformed)?;
        let value = attribute_value(&attr.value)?;
        let key = attr.key.as_ref();
        if key == b"xmlns" {
            ns_decls.push((None, value));
        } else if let Some(p) = key.strip_prefix(b"xmlns:") {
            let p = std::str::from_utf8(p).map_err(malformed)?.to_owned();
            if value.is_empty() {
                return Err(malformed(format!("prefix {p} undeclared")));
            }
            ns_decls.push((Some(p), value));
        } else {
            raw_attrs.push((split_qname(key)?, value));
        }
    }
    let ns = match prefix.as_deref() {
        Some(p) => Some(lookup(stack, &ns_decls, Some(p)).ok_or_else(|| ParseError::UnboundPrefix(p.to_owned()))?),
        None => lookup(stack, &ns_decls, None),
    }
    .map(str::to_owned);
    let mut attrs: Vec<Attr> = Vec::with_capacity(raw_attrs.len());
    for ((prefix, local), value) in raw_attrs {
        let ns = match prefix.as_deref() {
            Some(p) => Some(
                lookup(stack, &ns_decls, Some(p)).ok_or_else(|| ParseError::UnboundPrefix(p.to_owned()))?.to_owned(),
            ),
            None => None,
        };
        // Two prefixes for the same namespace can hide a duplicate.
        if attrs.iter().any(|a| a.ns == ns && a.local == local) {
            return Err(malformed(format!("duplicate attribute {local}")));
        }
        attrs.push(Attr { prefix, local, ns, value });
    }
    Ok(Element { prefix, local, ns, ns_decls, attrs, children: Vec::new() })
}

/// An attribute value as the XML 1.0 rules give it to an application:
/// line ends normalised, then literal white space turned into spaces, then
/// references resolved (a `&#xA;` stays a line feed). Only the predefined
/// entities and character references are known.
fn attribute_value(raw: &[u8]) -> Result<String, ParseError> {
    let s = std::str::from_utf8(raw).map_err(malformed)?;
    if s.contains('<') {
        return Err(malformed("'<' in an attribute value"));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(['&', '\r', '\n', '\t']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("\r\n") {
            out.push(' ');
            rest = after;
        } else if tail.starts_with(['\r', '\n', '\t']) {
            out.push(' ');
            rest = &tail[1..];
        } else {
            let end = tail.find(';').ok_or_else(|| malformed("unterminated reference in an attribute"))?;
            let name = &tail[1..end];
            out.push(resolve_reference(name)?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn resolve_reference(name: &str) -> Result<char, ParseError> {
    let code = if let Some(hex) = name.strip_prefix("#x") {
        hex.bytes().all(|b| b.is_ascii_hexdigit()).then(|| u32::from_str_radix(hex, 16).ok()).flatten()
    } else if let Some(dec) = name.strip_prefix('#') {
        dec.bytes().all(|b| b.is_ascii_digit()).then(|| dec.parse::<u32>().ok()).flatten()
    } else {
        return match name {
            "lt" => Ok('<'),
            "gt" => Ok('>'),
            "amp" => Ok('&'),
            "apos" => Ok('\''),
            "quot" => Ok('"'),
            _ => Err(ParseError::Entity(name.to_owned())),
        };
    };
    code.and_then(char::from_u32)
        .filter(|c| !matches!(*c as u32, 0 | 0xFFFE | 0xFFFF) && (*c as u32 >= 0x20 || matches!(c, '\t' | '\n' | '\r')))
        .ok_or_else(|| malformed(format!("bad character reference &{name};")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Element, ParseError> {
        parse(s.as_bytes(), Limits::default())
    }

    #[test]
    fn namespaces_prefixes_and_values_are_kept() {
        let doc = p(r#"<?xml version="1.0" encoding="UTF-8"?>
            <samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_a&amp;b" Note="x&#xA;y
z"><saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">sp&lt;1&gt;<!-- c -->x</saml:Issuer></samlp:AuthnRequest>"#)
        .unwrap();
        assert!(doc.is(ns::SAMLP, "AuthnRequest"));
        assert_eq!(doc.prefix.as_deref(), Some("samlp"));
        assert_eq!(doc.attribute("ID"), Some("_a&b"));
        assert_eq!(doc.attribute("Note"), Some("x\ny z"));
        let issuer = doc.first(ns::SAML, "Issuer").unwrap();
        assert_eq!(issuer.text_content().as_deref(), Some("sp<1>x"), "a comment neither splits nor truncates");
    }

    #[test]
    fn doctype_and_entities_are_refused() {
        let xxe = r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>"#;
        assert_eq!(p(xxe), Err(ParseError::Doctype));
        let bomb = r#"<!DOCTYPE l [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><l>&b;</l>"#;
        assert_eq!(p(bomb), Err(ParseError::Doctype));
        assert_eq!(p("<r>&nbsp;</r>"), Err(ParseError::Entity("nbsp".into())));
        assert_eq!(p(r#"<r a="&x;"/>"#), Err(ParseError::Entity("x".into())));
    }

    #[test]
    fn limits_hold() {
        let deep = "<a>".repeat(40) + &"</a>".repeat(40);
        assert_eq!(p(&deep), Err(ParseError::TooDeep(32)));
        let wide = format!("<a>{}</a>", "<b/>".repeat(5000));
        assert_eq!(p(&wide), Err(ParseError::TooManyNodes(4096)));
        let big = format!("<a>{}</a>", "x".repeat(300 * 1024));
        assert_eq!(p(&big), Err(ParseError::TooLarge(256 * 1024)));
    }

    #[test]
    fn malformed_documents_are_refused() {
        for bad in [
            "<a><b></a></b>",
            "<a>",
            "<a/><b/>",
            "<x:a/>",
            r#"<a b="1" b="2"/>"#,
            r#"<a xmlns:p="u" xmlns:q="u" p:b="1" q:b="2"/>"#,
            "text<a/>",
            r#"<?xml version="1.0" encoding="ISO-8859-1"?><a/>"#,
            "<a>&#0;</a>",
            "<a>&#1;</a>",
            "<a>&#xFFFE;</a>",
            r#"<a b="&#x+41;"/>"#,
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn written_documents_read_back_the_same() {
        let built = Element::new(Some("p"), "Root", Some("urn:p"))
            .declare(Some("p"), "urn:p")
            .attr("ID", "_1\"<&\n")
            .child(Element::new(Some("p"), "Child", Some("urn:p")).text("a<b>&c\r"));
        let xml = built.to_xml();
        assert_eq!(p(&xml).unwrap(), built);
    }
}
