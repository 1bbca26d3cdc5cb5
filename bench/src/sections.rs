//! Sections of BENCHMARKS.md that a single scenario or tool writes by itself, between
//! `<!-- NAME:begin -->` and `<!-- NAME:end -->` lines: a run of one scenario replaces only
//! its own section, and the full report keeps the sections it did not regenerate.

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- {name}:begin -->"),
        format!("<!-- {name}:end -->\n"),
    )
}

/// The marked section `name` of `text`, markers included.
pub fn find<'a>(text: &'a str, name: &str) -> Option<&'a str> {
    let (begin, end) = markers(name);
    let a = text.find(&begin)?;
    let b = text[a..].find(&end)? + a + end.len();
    Some(&text[a..b])
}

/// `text` with its section `name` replaced by `section` (which carries the markers), or
/// with `section` appended when it has none.
pub fn splice(text: &str, name: &str, section: &str) -> String {
    match find(text, name) {
        Some(old) => {
            let a = text.find(old).unwrap_or(0);
            format!("{}{section}{}", &text[..a], &text[a + old.len()..])
        }
        None if text.is_empty() => section.to_string(),
        None => format!(
            "{}\n{section}",
            text.trim_end_matches('\n').to_string() + "\n"
        ),
    }
}

/// Every marked section of `old` that `new` lacks, appended to `new` in `old`'s order.
pub fn keep(old: &str, new: &str) -> String {
    let mut out = new.to_string();
    let mut rest = old;
    while let Some(at) = rest.find("<!-- ") {
        let tail = &rest[at + 5..];
        let Some(name) = tail
            .find(":begin -->")
            .map(|e| &tail[..e])
            .filter(|n| !n.contains(char::is_whitespace))
        else {
            rest = tail;
            continue;
        };
        match find(rest, name) {
            Some(section) => {
                if find(&out, name).is_none() {
                    out = splice(&out, name, section);
                }
                let end = rest.find(section).unwrap_or(0) + section.len();
                rest = &rest[end..];
            }
            None => rest = tail,
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splice_replaces_only_its_section_and_keep_carries_the_others() {
        let doc = "# t\n\nx\n<!-- a:begin -->\nold a\n<!-- a:end -->\ny\n";
        let new = splice(doc, "a", "<!-- a:begin -->\nnew a\n<!-- a:end -->\n");
        assert_eq!(
            new,
            "# t\n\nx\n<!-- a:begin -->\nnew a\n<!-- a:end -->\ny\n"
        );
        let added = splice(&new, "b", "<!-- b:begin -->\nb\n<!-- b:end -->\n");
        assert!(added.ends_with("y\n\n<!-- b:begin -->\nb\n<!-- b:end -->\n"));
        let regenerated = keep(&added, "# t\n\nfresh\n");
        assert_eq!(
            regenerated,
            "# t\n\nfresh\n\n<!-- a:begin -->\nnew a\n<!-- a:end -->\n\n<!-- b:begin -->\nb\n<!-- b:end -->\n"
        );
        assert_eq!(keep(&added, &added), added);
    }
}
