//! One line from an error and its sources.
//!
//! Our error types show their cause in their own message (so a log line
//! with `%e` is complete) and also expose it as `source()`; the SDK's
//! errors often repeat their source's text too. Joining the chain as is
//! would print the same cause twice.

/// The Display of `e` and its sources, joined with ": ", skipping a source
/// whose text its parent already shows. Line breaks inside a message (the
/// AWS SDK lists each credential provider it tried on its own line) become
/// "; ", so the result is one line.
pub fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = Some(e);
    while let Some(err) = cur {
        let text = err
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        if !parts.last().is_some_and(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = err.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;

    #[derive(Debug)]
    struct Layer(String, Option<Box<Layer>>);
    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn skips_a_source_its_parent_already_shows() {
        let inner = Layer("timed out".into(), None);
        let mid = Layer("io error: timed out".into(), Some(Box::new(inner)));
        let top = Layer("dispatch failure".into(), Some(Box::new(mid)));
        assert_eq!(one_line(&top), "dispatch failure: io error: timed out");
    }

    #[test]
    fn a_message_over_several_lines_becomes_one() {
        let inner = Layer(
            "Attempted:\n  Environment: not set\n  Profile: none\n".into(),
            None,
        );
        let top = Layer("no credentials".into(), Some(Box::new(inner)));
        assert_eq!(
            one_line(&top),
            "no credentials: Attempted:; Environment: not set; Profile: none"
        );
    }

    #[test]
    fn anyhow_context_over_an_error_that_shows_its_source() {
        let io = std::io::Error::from_raw_os_error(2);
        let e = crate::vault::VaultError::Io {
            op: "create",
            path: "/x/.tmp".into(),
            source: io,
        };
        let e = anyhow::Error::new(e).context("restore failed");
        assert_eq!(
            one_line(e.as_ref()),
            "restore failed: create /x/.tmp: No such file or directory (os error 2)"
        );
    }
}
