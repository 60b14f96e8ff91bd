//! The command line of an scp exec request (`scp [-r] [-p] -t|-f PATH`), split as the remote
//! shell would split it.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub(super) sink: bool,
    pub(super) recursive: bool,
    pub(super) preserve: bool,
    pub(super) path: String,
}

impl Command {
    /// Parses `scp [-r] [-p] [-d] [-v] -t|-f [--] PATH` as the remote shell would split it.
    pub fn parse(line: &str) -> Option<Self> {
        let words = shell_words(line)?;
        let mut words = words.into_iter();
        if words.next()? != "scp" {
            return None;
        }
        let (mut sink, mut source, mut recursive, mut preserve) = (false, false, false, false);
        let mut path = None;
        let mut options_done = false;
        for word in words {
            if !options_done && word == "--" {
                options_done = true;
            } else if !options_done && word.starts_with('-') && word.len() > 1 {
                for flag in word.chars().skip(1) {
                    match flag {
                        't' => sink = true,
                        'f' => source = true,
                        'r' => recursive = true,
                        'p' => preserve = true,
                        'd' | 'v' | 'q' => {}
                        _ => return None,
                    }
                }
            } else if path.is_none() {
                path = Some(word);
            } else {
                return None; // several sources: not supported
            }
        }
        if sink == source {
            return None;
        }
        Some(Self { sink, recursive, preserve, path: path.unwrap_or_else(|| ".".into()) })
    }
}

/// Splits a command line the way a POSIX shell would for plain words and quotes.
fn shell_words(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => current.push(c),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => match chars.next()? {
                            c @ ('"' | '\\' | '$' | '`') => current.push(c),
                            c => {
                                current.push('\\');
                                current.push(c);
                            }
                        },
                        c => current.push(c),
                    }
                }
            }
            '\\' => {
                in_word = true;
                current.push(chars.next()?);
            }
            c => {
                in_word = true;
                current.push(c);
            }
        }
    }
    if in_word {
        words.push(current);
    }
    Some(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_like_a_shell() {
        let c = Command::parse("scp -r -p -t -- '/in/my file.txt'").unwrap();
        assert!(c.sink && c.recursive && c.preserve);
        assert_eq!(c.path, "/in/my file.txt");
        let c = Command::parse("scp -f \"a \\\"b\\\"\"").unwrap();
        assert!(!c.sink);
        assert_eq!(c.path, "a \"b\"");
        assert_eq!(Command::parse("scp -f a\\ b").unwrap().path, "a b");
        assert!(Command::parse("rm -rf /").is_none());
        assert!(Command::parse("scp -t -f x").is_none());
        assert!(Command::parse("scp -t 'unterminated").is_none());
    }
}
