//! Control-channel command parsing (RFC 959 §4, RFC 2389 FEAT/OPTS, RFC 2428 EPSV/EPRT,
//! RFC 3659 SIZE/MDTM/MLST/REST, RFC 4217 AUTH/PBSZ/PROT/CCC). A line becomes a [`Verb`] and
//! its argument; unknown verbs are kept so the state machine can answer 502.
//!
//! The `verbs!` table below is the one list of verbs this server answers: the parser, the
//! dispatch `match` (exhaustive over [`Verb`]), HELP and FEAT all come from it.

/// One parsed command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The verb (`XPWD` normalised to `PWD`, …); an unknown one keeps its upper-cased name.
    pub verb: Verb,
    /// Everything after the first space, untrimmed on the right (file names may end in spaces).
    pub arg: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("line is not UTF-8")]
    NotUtf8,
    #[error("empty command")]
    Empty,
    #[error("command verb is not ASCII letters")]
    BadVerb,
}

/// Declares [`Verb`] with, per verb, its wire name, its HELP line (`None`: not listed) and the
/// FEAT line it announces (RFC 2389 §3.2), in HELP order.
macro_rules! verbs {
    ($($variant:ident = $name:literal, help: $help:expr, feat: $feat:expr;)*) => {
        /// A command verb; `Other` is one this server does not implement (502).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Verb {
            $($variant,)*
            /// Upper-cased, 1-8 ASCII letters.
            Other(String),
        }

        impl Verb {
            /// Every verb this server answers, in HELP order.
            pub const KNOWN: &'static [Verb] = &[$(Verb::$variant),*];

            /// The verb named by an upper-cased word (aliases already mapped).
            fn from_name(name: String) -> Verb {
                match name.as_str() {
                    $($name => Verb::$variant,)*
                    _ => Verb::Other(name),
                }
            }

            /// The verb as sent on the wire (upper case).
            pub fn name(&self) -> &str {
                match self {
                    $(Verb::$variant => $name,)*
                    Verb::Other(name) => name,
                }
            }

            /// Which line of the HELP text lists this verb.
            fn help_line(&self) -> Option<usize> {
                match self {
                    $(Verb::$variant => $help,)*
                    Verb::Other(_) => None,
                }
            }

            /// The FEAT line announcing this verb's extension, if it has one.
            fn feature(&self) -> Option<&'static str> {
                match self {
                    $(Verb::$variant => $feat,)*
                    Verb::Other(_) => None,
                }
            }
        }
    };
}

verbs! {
    User = "USER", help: Some(0), feat: None;
    Pass = "PASS", help: Some(0), feat: None;
    Auth = "AUTH", help: Some(0), feat: Some("AUTH TLS");
    Pbsz = "PBSZ", help: Some(0), feat: Some("PBSZ");
    Prot = "PROT", help: Some(0), feat: Some("PROT");
    Ccc = "CCC", help: None, feat: None;
    Feat = "FEAT", help: Some(0), feat: None;
    // RFC 2640 §3.3: UTF8 paths, which `OPTS UTF8` acknowledges.
    Opts = "OPTS", help: Some(0), feat: Some("UTF8");
    Syst = "SYST", help: Some(0), feat: None;
    Help = "HELP", help: None, feat: None;
    Pwd = "PWD", help: Some(0), feat: None;
    Cwd = "CWD", help: Some(0), feat: None;
    Cdup = "CDUP", help: Some(0), feat: None;
    List = "LIST", help: Some(0), feat: None;
    Nlst = "NLST", help: Some(0), feat: None;
    Mlsd = "MLSD", help: Some(0), feat: None;
    Mlst = "MLST", help: Some(0), feat: Some("MLST type*;size*;modify*;perm*;");
    Size = "SIZE", help: Some(1), feat: Some("SIZE");
    Mdtm = "MDTM", help: Some(1), feat: Some("MDTM");
    Mfmt = "MFMT", help: Some(1), feat: Some("MFMT");
    Type = "TYPE", help: Some(1), feat: None;
    Mode = "MODE", help: Some(1), feat: None;
    Stru = "STRU", help: Some(1), feat: None;
    Allo = "ALLO", help: None, feat: None;
    Retr = "RETR", help: Some(1), feat: None;
    Stor = "STOR", help: Some(1), feat: None;
    Stou = "STOU", help: Some(1), feat: None;
    Appe = "APPE", help: Some(1), feat: None;
    Rest = "REST", help: Some(1), feat: Some("REST STREAM");
    Rnfr = "RNFR", help: Some(1), feat: None;
    Rnto = "RNTO", help: Some(1), feat: None;
    Dele = "DELE", help: Some(1), feat: None;
    Mkd = "MKD", help: Some(1), feat: None;
    Rmd = "RMD", help: Some(1), feat: None;
    Abor = "ABOR", help: Some(2), feat: None;
    Noop = "NOOP", help: Some(2), feat: None;
    Quit = "QUIT", help: Some(2), feat: None;
    Stat = "STAT", help: Some(2), feat: None;
    Epsv = "EPSV", help: Some(2), feat: Some("EPSV");
    Pasv = "PASV", help: Some(2), feat: None;
    Eprt = "EPRT", help: Some(2), feat: Some("EPRT");
    Port = "PORT", help: Some(2), feat: None;
}

/// Features that belong to no single verb: TVFS path syntax (RFC 3659 §6).
const SERVER_FEATURES: &[&str] = &["TVFS"];

/// Lines of the HELP text (RFC 959 §4.1.3).
const HELP_LINES: usize = 3;

impl Verb {
    /// Verbs answered while a transfer runs; any other waits for the transfer's reply.
    pub fn overtakes_transfer(&self) -> bool {
        matches!(self, Verb::Abor | Verb::Stat | Verb::Noop)
    }
}

/// The 214 text of HELP: every listed verb, on the lines the table gives.
pub fn help_text() -> String {
    let mut lines = vec![Vec::new(); HELP_LINES];
    for verb in Verb::KNOWN {
        if let Some(line) = verb.help_line().and_then(|n| lines.get_mut(n)) {
            line.push(verb.name());
        }
    }
    let listed: Vec<String> = lines.iter().map(|line| line.join(" ")).collect();
    format!("Commands: {}\nHelp OK", listed.join("\n"))
}

/// The FEAT lines (RFC 2389 §3.2) between `Features:` and `End`: AUTH TLS only when it can
/// be used now, EPRT only when active mode is on.
pub fn features(offer_auth_tls: bool, active_mode: bool) -> Vec<&'static str> {
    let offered = |verb: &&Verb| match verb {
        Verb::Auth => offer_auth_tls,
        Verb::Eprt => active_mode,
        _ => true,
    };
    let verbs = Verb::KNOWN.iter().filter(offered).filter_map(Verb::feature);
    verbs.chain(SERVER_FEATURES.iter().copied()).collect()
}

/// Parses one line (without its CRLF).
pub fn parse(line: &[u8]) -> Result<Command, ParseError> {
    let line = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    let line = line.trim_start();
    if line.is_empty() {
        return Err(ParseError::Empty);
    }
    let (verb, arg) = match line.split_once(' ') {
        Some((verb, arg)) => (verb, arg),
        None => (line, ""),
    };
    if verb.is_empty() || verb.len() > 8 || !verb.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(ParseError::BadVerb);
    }
    let verb = verb.to_ascii_uppercase();
    let verb = match verb.as_str() {
        "XPWD" => "PWD".to_string(),
        "XCWD" => "CWD".to_string(),
        "XCUP" => "CDUP".to_string(),
        "XMKD" => "MKD".to_string(),
        "XRMD" => "RMD".to_string(),
        _ => verb,
    };
    Ok(Command { verb: Verb::from_name(verb), arg: arg.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbs_are_normalised_and_arguments_kept() {
        assert_eq!(
            parse(b"retr my file.txt ").unwrap(),
            Command { verb: Verb::Retr, arg: "my file.txt ".into() }
        );
        assert_eq!(parse(b"XPWD").unwrap().verb.name(), "PWD");
        assert_eq!(parse(b"NOOP").unwrap().arg, "");
        assert_eq!(parse(b"\xff\xfe"), Err(ParseError::NotUtf8));
        assert_eq!(parse(b"   "), Err(ParseError::Empty));
        assert_eq!(parse(b"R3TR x"), Err(ParseError::BadVerb));
        assert_eq!(parse(b"STOR \xc3\xa9t\xc3\xa9.txt").unwrap().arg, "été.txt");
        assert_eq!(parse(b"site chmod").unwrap().verb, Verb::Other("SITE".into()));
    }

    #[test]
    fn every_known_verb_parses_to_itself() {
        // The hand-written list this table replaced.
        let mut before = [
            "USER", "PASS", "AUTH", "PBSZ", "PROT", "CCC", "FEAT", "SYST", "NOOP", "HELP", "QUIT", "OPTS",
            "ABOR", "STAT", "PWD", "CWD", "CDUP", "TYPE", "MODE", "STRU", "ALLO", "REST", "PASV", "EPSV",
            "PORT", "EPRT", "RETR", "STOR", "APPE", "STOU", "LIST", "NLST", "MLSD", "MLST", "SIZE", "MDTM",
            "MFMT", "DELE", "MKD", "RMD", "RNFR", "RNTO",
        ];
        before.sort_unstable();
        let mut names: Vec<&str> = Verb::KNOWN.iter().map(Verb::name).collect();
        names.sort_unstable();
        assert_eq!(names, before);
        for verb in Verb::KNOWN {
            assert_eq!(&parse(verb.name().as_bytes()).unwrap().verb, verb);
        }
    }

    /// The texts the hand-written HELP and FEAT replies had before the table.
    #[test]
    fn help_and_feat_texts_are_unchanged() {
        assert_eq!(
            help_text(),
            "Commands: USER PASS AUTH PBSZ PROT FEAT OPTS SYST PWD CWD CDUP LIST NLST MLSD MLST\nSIZE \
             MDTM MFMT TYPE MODE STRU RETR STOR STOU APPE REST RNFR RNTO DELE MKD RMD\nABOR NOOP QUIT \
             STAT EPSV PASV EPRT PORT\nHelp OK"
        );
        let plain = [
            "PBSZ",
            "PROT",
            "UTF8",
            "MLST type*;size*;modify*;perm*;",
            "SIZE",
            "MDTM",
            "MFMT",
            "REST STREAM",
            "EPSV",
            "TVFS",
        ];
        assert_eq!(features(false, false), plain);
        let mut with_auth = vec!["AUTH TLS"];
        with_auth.extend(plain);
        assert_eq!(features(true, false), with_auth);
        assert!(features(true, true).contains(&"EPRT"));
    }

    /// docs/protocols/ftp.md lists exactly the verbs of the table.
    #[test]
    fn the_documented_verbs_are_the_known_verbs() {
        let doc = include_str!("../../../docs/protocols/ftp.md");
        let list = doc.split("## Commands").nth(1).and_then(|s| s.split('`').nth(1)).unwrap();
        let mut documented: Vec<&str> = list.split_whitespace().collect();
        documented.sort_unstable();
        let mut names: Vec<&str> = Verb::KNOWN.iter().map(Verb::name).collect();
        names.sort_unstable();
        assert_eq!(documented, names);
    }
}
