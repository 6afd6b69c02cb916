//! Tokenizer: one line of ntp.conf text into words with columns.
//!
//! A `#` outside quotes starts a comment that runs to the end of the line;
//! words are separated by whitespace; a word that begins with `"` runs to the
//! next `"` and may contain spaces and `#` (ntpd accepts quoted strings for
//! paths). Columns are 1-based and counted in characters. This module knows
//! nothing about directives and never fails on a line except for an
//! unterminated quote.

/// A word of a line, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// The word, without surrounding quotes.
    pub(crate) text: String,
    /// 1-based column of its first character (the quote, if quoted).
    pub(crate) col: u32,
    /// Width in characters as written (quotes included).
    pub(crate) width: u32,
}

impl Token {
    /// The column just after this token, where a missing value would go.
    pub(crate) fn end_col(&self) -> u32 {
        self.col.saturating_add(self.width)
    }
}

/// The line has a `"` without its closing partner; `col` is the opening one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct UnterminatedQuote {
    pub(crate) col: u32,
}

/// Splits one line (without its newline) into tokens.
pub(crate) fn lex_line(line: &str) -> Result<Vec<Token>, UnterminatedQuote> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    // Columns saturate rather than wrap: a 4-billion-character line is
    // absurd but must not panic.
    let mut col: u32 = 0;
    let mut next = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>| {
        let c = chars.next();
        if c.is_some() {
            col = col.saturating_add(1);
        }
        c.map(|c| (c, col))
    };
    while let Some((ch, start)) = next(&mut chars) {
        if ch.is_whitespace() {
            continue;
        }
        if ch == '#' {
            break;
        }
        let mut text = String::new();
        let mut width: u32 = 1;
        if ch == '"' {
            let mut closed = false;
            while let Some((c, _)) = next(&mut chars) {
                width = width.saturating_add(1);
                if c == '"' {
                    closed = true;
                    break;
                }
                text.push(c);
            }
            if !closed {
                return Err(UnterminatedQuote { col: start });
            }
        } else {
            text.push(ch);
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '#' {
                    break;
                }
                let _ = next(&mut chars);
                text.push(c);
                width = width.saturating_add(1);
            }
        }
        tokens.push(Token { text, col: start, width });
    }
    Ok(tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<(String, u32, u32)> {
        lex_line(line).unwrap().into_iter().map(|t| (t.text, t.col, t.width)).collect()
    }

    #[test]
    fn words_columns_and_comments() {
        assert_eq!(
            words("  server\tntp.example.com iburst # comment"),
            vec![
                ("server".into(), 3, 6),
                ("ntp.example.com".into(), 10, 15),
                ("iburst".into(), 26, 6),
            ]
        );
        assert_eq!(words("pool a#comment"), vec![("pool".into(), 1, 4), ("a".into(), 6, 1)]);
        assert!(words("# only a comment").is_empty());
        assert!(words("   \r").is_empty());
    }

    #[test]
    fn quotes() {
        assert_eq!(
            words(r#"driftfile "/var/lib/ntp # x/drift" x"#),
            vec![
                ("driftfile".into(), 1, 9),
                ("/var/lib/ntp # x/drift".into(), 11, 24),
                ("x".into(), 36, 1)
            ]
        );
        assert_eq!(lex_line(r#"driftfile "/oops"#), Err(UnterminatedQuote { col: 11 }));
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(words("ü x"), vec![("ü".into(), 1, 1), ("x".into(), 3, 1)]);
    }
}
