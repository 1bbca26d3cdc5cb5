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

/// `text` with its section `name` replaced by `section`; a new one goes right after the
/// section `after` (when `text` has it), so that related sections stay together.
pub fn splice_after(text: &str, name: &str, after: &str, section: &str) -> String {
    match (find(text, name), find(text, after)) {
        (None, Some(prev)) => {
            let at = text.find(prev).unwrap_or(0) + prev.len();
            format!("{}\n{section}{}", &text[..at], &text[at..])
        }
        _ => splice(text, name, section),
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

    #[test]
    fn a_new_section_goes_after_its_neighbour_and_then_stays_where_it_is() {
        let doc = "# t\n<!-- a:begin -->\na\n<!-- a:end -->\n\nlater\n";
        let c = "<!-- c:begin -->\nc\n<!-- c:end -->\n";
        let once = splice_after(doc, "c", "a", c);
        assert_eq!(
            once,
            "# t\n<!-- a:begin -->\na\n<!-- a:end -->\n\n<!-- c:begin -->\nc\n<!-- c:end -->\n\nlater\n"
        );
        let again = splice_after(&once, "c", "a", "<!-- c:begin -->\nc2\n<!-- c:end -->\n");
        assert_eq!(again, once.replace("\nc\n", "\nc2\n"));
        // Replacing its neighbour leaves it alone.
        let a2 = splice(&again, "a", "<!-- a:begin -->\na2\n<!-- a:end -->\n");
        assert!(a2.contains("\nc2\n") && a2.contains("\na2\n"));
    }
}
