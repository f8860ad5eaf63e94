//! Exclusive XML Canonicalization 1.0, without comments
//! (`http://www.w3.org/2001/10/xml-exc-c14n#`), of an element's subtree.
//!
//! A namespace declaration is written on an element only where the element
//! or one of its attributes uses the prefix ("visibly utilised") — or the
//! prefix is in the `InclusiveNamespaces` list — and the nearest written
//! ancestor did not already write the same binding. Declarations are sorted
//! by prefix (the default one first), attributes by namespace URI then local
//! name (unqualified ones first); comments are dropped; text and attribute
//! values are escaped as the recommendation says. The result does not depend
//! on where the subtree sits, which is why SAML signs with it.

use crate::dom::{Element, Node, escape_attr, escape_text, push_pi, push_qname};

/// Namespace bindings: `(prefix, uri)`, `None` being the default namespace.
pub type Bindings = [(Option<String>, String)];

/// The canonical form of `apex` and its subtree. `inherited` are the
/// namespace declarations of its ancestors, outermost first; `exclude` is
/// an element left out with its subtree (the enveloped signature);
/// `inclusive` the prefixes of an `InclusiveNamespaces PrefixList`
/// (`#default` for the default namespace).
pub fn exclusive(apex: &Element, inherited: &Bindings, exclude: Option<&Element>, inclusive: &[String]) -> String {
    let mut in_scope: Vec<(Option<String>, String)> = inherited.to_vec();
    let mut rendered: Vec<(Option<String>, String)> = Vec::new();
    let inclusive: Vec<Option<&str>> =
        inclusive.iter().map(|p| if p == "#default" { None } else { Some(p.as_str()) }).collect();
    let mut out = String::with_capacity(2048);
    render(apex, &mut in_scope, &mut rendered, exclude, &inclusive, &mut out);
    out
}

fn bound<'a>(bindings: &'a [(Option<String>, String)], prefix: Option<&str>) -> &'a str {
    bindings.iter().rev().find(|(p, _)| p.as_deref() == prefix).map(|(_, u)| u.as_str()).unwrap_or("")
}

fn render(
    e: &Element,
    in_scope: &mut Vec<(Option<String>, String)>,
    rendered: &mut Vec<(Option<String>, String)>,
    exclude: Option<&Element>,
    inclusive: &[Option<&str>],
    out: &mut String,
) {
    let scope_len = in_scope.len();
    in_scope.extend(e.ns_decls.iter().cloned());

    // The prefixes this element needs declared.
    let mut used: Vec<Option<&str>> = vec![e.prefix.as_deref()];
    used.extend(e.attrs.iter().filter_map(|a| a.prefix.as_deref().map(Some)));
    used.extend(inclusive.iter().copied());
    used.retain(|p| *p != Some("xml"));
    used.sort_unstable();
    used.dedup();

    let mut decls: Vec<(Option<String>, String)> = Vec::new();
    for prefix in used {
        let uri = bound(in_scope, prefix);
        if prefix.is_some() && uri.is_empty() {
            // Only an inclusive-list prefix can be unbound here.
            continue;
        }
        if bound(rendered, prefix) != uri {
            decls.push((prefix.map(str::to_owned), uri.to_owned()));
        }
    }
    let rendered_len = rendered.len();
    rendered.extend(decls.iter().cloned());

    out.push('<');
    push_qname(e.prefix.as_deref(), &e.local, out);
    for (prefix, uri) in &decls {
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
    let mut attrs: Vec<_> = e.attrs.iter().collect();
    attrs.sort_by(|a, b| (a.ns.as_deref().unwrap_or(""), &a.local).cmp(&(b.ns.as_deref().unwrap_or(""), &b.local)));
    for a in attrs {
        out.push(' ');
        push_qname(a.prefix.as_deref(), &a.local, out);
        out.push_str("=\"");
        escape_attr(&a.value, out);
        out.push('"');
    }
    out.push('>');
    for child in &e.children {
        match child {
            Node::Element(c) => {
                if !exclude.is_some_and(|x| std::ptr::eq(x, c)) {
                    render(c, in_scope, rendered, exclude, inclusive, out);
                }
            }
            Node::Text(t) => escape_text(t, out),
            Node::Comment(_) => {}
            Node::ProcessingInstruction { target, data } => push_pi(target, data, out),
        }
    }
    out.push_str("</");
    push_qname(e.prefix.as_deref(), &e.local, out);
    out.push('>');

    rendered.truncate(rendered_len);
    in_scope.truncate(scope_len);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dom::{Limits, parse};

    fn c14n(xml: &str, inclusive: &[&str]) -> String {
        let doc = parse(xml.as_bytes(), Limits::default()).unwrap();
        let incl: Vec<String> = inclusive.iter().map(|s| s.to_string()).collect();
        exclusive(&doc, &[], None, &incl)
    }

    /// The examples of the recommendations, and the cases that trip
    /// implementations: attribute order, unused declarations, default
    /// namespace undeclared, escaping, empty elements, comments.
    #[test]
    fn canonical_forms() {
        assert_eq!(
            c14n(r#"<doc><e1   /><e2   ></e2><e3   name = "elem3"   id="elem3"   /></doc>"#, &[]),
            r#"<doc><e1></e1><e2></e2><e3 id="elem3" name="elem3"></e3></doc>"#
        );
        assert_eq!(
            c14n(
                r#"<n0:local xmlns:n0="foo:bar" xmlns:n3="ftp://example.org"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"/></n1:elem2></n0:local>"#,
                &[]
            ),
            r#"<n0:local xmlns:n0="foo:bar"><n1:elem2 xmlns:n1="http://example.net" xml:lang="en"><n3:stuff xmlns:n3="ftp://example.org"></n3:stuff></n1:elem2></n0:local>"#
        );
        assert_eq!(
            c14n(r#"<a xmlns="urn:a"><b xmlns=""><c/></b></a>"#, &[]),
            r#"<a xmlns="urn:a"><b xmlns=""><c></c></b></a>"#
        );
        assert_eq!(
            c14n("<a b=\"&lt;&amp;&quot;&#9;&#xA;&#xD;'>\">&lt;&amp;&gt;\"'&#xD;<!--x--><?pi  data?></a>", &[]),
            "<a b=\"&lt;&amp;&quot;&#x9;&#xA;&#xD;'>\">&lt;&amp;&gt;\"'&#xD;<?pi data?></a>"
        );
        assert_eq!(
            c14n(
                r#"<p:a xmlns:p="urn:p" xmlns:q="urn:q" z="1" q:y="2" p:x="3" a="4"><p:b xmlns:p="urn:p"/></p:a>"#,
                &[]
            ),
            r#"<p:a xmlns:p="urn:p" xmlns:q="urn:q" a="4" z="1" p:x="3" q:y="2"><p:b></p:b></p:a>"#
        );
        // An inclusive prefix is written even though nothing uses it.
        assert_eq!(
            c14n(r#"<p:a xmlns:p="urn:p" xmlns:xs="urn:xs"><p:b t="xs:string"/></p:a>"#, &["xs"]),
            r#"<p:a xmlns:p="urn:p" xmlns:xs="urn:xs"><p:b t="xs:string"></p:b></p:a>"#
        );
    }

    /// A subtree takes the declarations it uses from its ancestors and
    /// leaves out the excluded element.
    #[test]
    fn subtree_with_inherited_namespaces_and_exclusion() {
        let doc = parse(
            br#"<r:Root xmlns:r="urn:r" xmlns:s="urn:s" xmlns:unused="urn:u"><s:Inner ID="x"><s:Sig/><s:V>1</s:V></s:Inner></r:Root>"#,
            Limits::default(),
        )
        .unwrap();
        let inner = doc.elements().next().unwrap();
        let sig = inner.elements().next().unwrap();
        assert_eq!(
            exclusive(inner, &doc.ns_decls, Some(sig), &[]),
            r#"<s:Inner xmlns:s="urn:s" ID="x"><s:V>1</s:V></s:Inner>"#
        );
    }
}
