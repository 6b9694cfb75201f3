//! Lexer and parser for the small SQL dialect the emulator understands.

use super::SqlError;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// Identifier; `quoted` means it was written in double quotes (case kept).
    Ident {
        text: String,
        quoted: bool,
    },
    Str(String),
    Num(String),
    Sym(char),
}

#[derive(Debug, Clone)]
pub(crate) struct Token {
    pub tok: Tok,
    pub line: usize,
    pub col: usize,
    pub start: usize,
    pub end: usize,
}

impl Token {
    fn shown(&self) -> String {
        match &self.tok {
            Tok::Ident { text, .. } => text.clone(),
            Tok::Str(s) => format!("'{s}'"),
            Tok::Num(n) => n.clone(),
            Tok::Sym(c) => c.to_string(),
        }
    }

    /// Unquoted identifier equal (case-insensitively) to `kw`.
    fn is_kw(&self, kw: &str) -> bool {
        matches!(&self.tok, Tok::Ident { text, quoted: false } if text.eq_ignore_ascii_case(kw))
    }
}

pub(crate) fn syntax_error_at(tok: Option<&Token>, src_lines: usize) -> SqlError {
    match tok {
        Some(t) => SqlError::syntax(format!(
            "syntax error line {} at position {} unexpected '{}'.",
            t.line,
            t.col,
            t.shown()
        )),
        None => SqlError::syntax(format!(
            "syntax error line {} at position 0 unexpected '<EOF>'.",
            src_lines.max(1)
        )),
    }
}

pub(crate) fn lex(src: &str) -> Result<Vec<Token>, SqlError> {
    let chars: Vec<(usize, char)> = src.char_indices().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line = 1;
    let mut line_start = 0usize; // char index where the current line starts
    while i < chars.len() {
        let (pos, c) = chars[i];
        let col = i - line_start;
        if c == '\n' {
            line += 1;
            i += 1;
            line_start = i;
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && chars.get(i + 1).map(|x| x.1) == Some('-')
            || c == '/' && chars.get(i + 1).map(|x| x.1) == Some('/')
        {
            while i < chars.len() && chars[i].1 != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1).map(|x| x.1) == Some('*') {
            i += 2;
            while i < chars.len()
                && !(chars[i].1 == '*' && chars.get(i + 1).map(|x| x.1) == Some('/'))
            {
                if chars[i].1 == '\n' {
                    line += 1;
                    line_start = i + 1;
                }
                i += 1;
            }
            i = (i + 2).min(chars.len());
            continue;
        }
        let start = pos;
        if c == '\'' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(SqlError::syntax(format!(
                            "syntax error line {line} at position {col} unexpected '<EOF>'. String literal is not terminated."
                        )));
                    }
                    Some((_, '\'')) if chars.get(i + 1).map(|x| x.1) == Some('\'') => {
                        s.push('\'');
                        i += 2;
                    }
                    Some((_, '\'')) => {
                        i += 1;
                        break;
                    }
                    Some((_, '\\')) if chars.get(i + 1).is_some() => {
                        let (_, n) = chars[i + 1];
                        s.push(match n {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                        i += 2;
                    }
                    Some((_, ch)) => {
                        if *ch == '\n' {
                            line += 1;
                            line_start = i + 1;
                        }
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            out.push(Token {
                tok: Tok::Str(s),
                line,
                col,
                start,
                end,
            });
            continue;
        }
        if c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => {
                        return Err(SqlError::syntax(format!(
                            "syntax error line {line} at position {col} unexpected '<EOF>'. Quoted identifier is not terminated."
                        )));
                    }
                    Some((_, '"')) if chars.get(i + 1).map(|x| x.1) == Some('"') => {
                        s.push('"');
                        i += 2;
                    }
                    Some((_, '"')) => {
                        i += 1;
                        break;
                    }
                    Some((_, ch)) => {
                        s.push(*ch);
                        i += 1;
                    }
                }
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            out.push(Token {
                tok: Tok::Ident {
                    text: s,
                    quoted: true,
                },
                line,
                col,
                start,
                end,
            });
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some((_, ch)) = chars.get(i) {
                if ch.is_ascii_alphanumeric() || *ch == '_' || *ch == '$' {
                    s.push(*ch);
                    i += 1;
                } else {
                    break;
                }
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            out.push(Token {
                tok: Tok::Ident {
                    text: s,
                    quoted: false,
                },
                line,
                col,
                start,
                end,
            });
            continue;
        }
        if c.is_ascii_digit()
            || (c == '-' && chars.get(i + 1).is_some_and(|x| x.1.is_ascii_digit()))
        {
            let mut s = String::from(c);
            i += 1;
            while let Some((_, ch)) = chars.get(i) {
                if ch.is_ascii_digit() || *ch == '.' {
                    s.push(*ch);
                    i += 1;
                } else {
                    break;
                }
            }
            let end = chars.get(i).map_or(src.len(), |x| x.0);
            out.push(Token {
                tok: Tok::Num(s),
                line,
                col,
                start,
                end,
            });
            continue;
        }
        i += 1;
        let end = chars.get(i).map_or(src.len(), |x| x.0);
        out.push(Token {
            tok: Tok::Sym(c),
            line,
            col,
            start,
            end,
        });
    }
    Ok(out)
}

/// One statement's tokens and its source text.
pub(crate) struct RawStatement {
    pub text: String,
    pub tokens: Vec<Token>,
}

/// Splits a script on `;` (outside strings and comments). Empty statements are dropped.
pub(crate) fn split(src: &str) -> Result<Vec<RawStatement>, SqlError> {
    let tokens = lex(src)?;
    let mut out = Vec::new();
    let mut cur: Vec<Token> = Vec::new();
    for t in tokens {
        if t.tok == Tok::Sym(';') {
            if !cur.is_empty() {
                out.push(finish(src, std::mem::take(&mut cur)));
            }
        } else {
            cur.push(t);
        }
    }
    if !cur.is_empty() {
        out.push(finish(src, cur));
    }
    Ok(out)
}

fn finish(src: &str, tokens: Vec<Token>) -> RawStatement {
    let start = tokens.first().map_or(0, |t| t.start);
    let end = tokens.last().map_or(0, |t| t.end);
    RawStatement {
        text: src[start..end].to_string(),
        tokens,
    }
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    Num(String),
    /// Bare word (TRUE, FALSE, OAUTH, CUSTOM, ...), upper-cased.
    Word(String),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Prop {
    pub name: String,
    pub value: Value,
}

#[derive(Debug, Clone)]
pub(crate) enum Expr {
    Call { name: String, args: Vec<Expr> },
    Str(String),
    Num(String),
}

#[derive(Debug, Clone)]
pub(crate) enum Stmt {
    CreateIntegration {
        or_replace: bool,
        if_not_exists: bool,
        name: String,
        props: Vec<Prop>,
    },
    AlterIntegrationSet {
        if_exists: bool,
        name: String,
        props: Vec<Prop>,
    },
    AlterIntegrationRefreshSecret {
        if_exists: bool,
        name: String,
        second: bool,
    },
    DropIntegration {
        if_exists: bool,
        name: String,
    },
    ShowIntegrations {
        like: Option<String>,
    },
    DescIntegration {
        name: String,
    },
    Select {
        items: Vec<(Expr, String)>,
    },
    RemoveDelegatedAuthorizations {
        user: String,
        integration: String,
    },
    UseRole {
        role: String,
    },
    /// `ALTER USER [IF EXISTS] u SET RSA_PUBLIC_KEY = '...' [RSA_PUBLIC_KEY_2 = '...']`.
    AlterUserSet {
        if_exists: bool,
        user: String,
        props: Vec<Prop>,
    },
    /// `ALTER USER [IF EXISTS] u UNSET RSA_PUBLIC_KEY [, RSA_PUBLIC_KEY_2]`.
    AlterUserUnset {
        if_exists: bool,
        user: String,
        names: Vec<String>,
    },
    DescUser {
        user: String,
    },
}

struct Parser<'a> {
    toks: &'a [Token],
    pos: usize,
    lines: usize,
}

type PResult<T> = Result<T, SqlError>;

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a Token> {
        self.toks.get(self.pos)
    }
    fn err(&self) -> SqlError {
        syntax_error_at(self.peek(), self.lines)
    }
    fn at_kw(&self, kw: &str) -> bool {
        self.peek().is_some_and(|t| t.is_kw(kw))
    }
    fn eat_kw(&mut self, kw: &str) -> bool {
        if self.at_kw(kw) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_kw(&mut self, kw: &str) -> PResult<()> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.err())
        }
    }
    fn eat_sym(&mut self, c: char) -> bool {
        if self.peek().is_some_and(|t| t.tok == Tok::Sym(c)) {
            self.pos += 1;
            true
        } else {
            false
        }
    }
    fn expect_sym(&mut self, c: char) -> PResult<()> {
        if self.eat_sym(c) {
            Ok(())
        } else {
            Err(self.err())
        }
    }
    /// An object name: unquoted is upper-cased, quoted is kept exactly.
    fn ident(&mut self) -> PResult<String> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Ident {
                text,
                quoted: false,
            }) => {
                self.pos += 1;
                Ok(text.to_ascii_uppercase())
            }
            Some(Tok::Ident { text, quoted: true }) => {
                self.pos += 1;
                Ok(text.clone())
            }
            _ => Err(self.err()),
        }
    }
    fn string(&mut self) -> PResult<String> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(s.clone())
            }
            _ => Err(self.err()),
        }
    }
    fn end(&self) -> PResult<()> {
        if self.peek().is_none() {
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn value(&mut self) -> PResult<Value> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Value::Str(s.clone()))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Value::Num(n.clone()))
            }
            Some(Tok::Ident {
                text,
                quoted: false,
            }) => {
                self.pos += 1;
                Ok(Value::Word(text.to_ascii_uppercase()))
            }
            Some(Tok::Sym('(')) => {
                self.pos += 1;
                let mut items = Vec::new();
                if self.eat_sym(')') {
                    return Ok(Value::List(items));
                }
                loop {
                    match self.peek().map(|t| &t.tok) {
                        Some(Tok::Str(s)) => {
                            self.pos += 1;
                            items.push(s.clone());
                        }
                        Some(Tok::Ident { .. }) => items.push(self.ident()?),
                        _ => return Err(self.err()),
                    }
                    if self.eat_sym(')') {
                        break;
                    }
                    self.expect_sym(',')?;
                }
                Ok(Value::List(items))
            }
            _ => Err(self.err()),
        }
    }

    /// `KEY = value` pairs until the end of the statement.
    fn props(&mut self) -> PResult<Vec<Prop>> {
        let mut props = Vec::new();
        while self.peek().is_some() {
            let name = match self.peek().map(|t| &t.tok) {
                Some(Tok::Ident {
                    text,
                    quoted: false,
                }) => text.to_ascii_uppercase(),
                _ => return Err(self.err()),
            };
            self.pos += 1;
            self.expect_sym('=')?;
            let value = self.value()?;
            props.push(Prop { name, value });
            self.eat_sym(',');
        }
        Ok(props)
    }

    fn expr(&mut self) -> PResult<Expr> {
        match self.peek().map(|t| &t.tok) {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Str(s.clone()))
            }
            Some(Tok::Num(n)) => {
                self.pos += 1;
                Ok(Expr::Num(n.clone()))
            }
            Some(Tok::Ident {
                text,
                quoted: false,
            }) => {
                let name = text.to_ascii_uppercase();
                self.pos += 1;
                // CURRENT_USER / CURRENT_ROLE may be written without parentheses.
                if !self.eat_sym('(') {
                    if matches!(
                        name.as_str(),
                        "CURRENT_USER" | "CURRENT_ROLE" | "CURRENT_ACCOUNT"
                    ) {
                        return Ok(Expr::Call {
                            name,
                            args: Vec::new(),
                        });
                    }
                    self.pos -= 1;
                    return Err(self.err());
                }
                let mut args = Vec::new();
                if !self.eat_sym(')') {
                    loop {
                        args.push(self.expr()?);
                        if self.eat_sym(')') {
                            break;
                        }
                        self.expect_sym(',')?;
                    }
                }
                Ok(Expr::Call { name, args })
            }
            _ => Err(self.err()),
        }
    }
}

fn integration_kw(p: &mut Parser<'_>, security_optional: bool) -> PResult<()> {
    if security_optional {
        p.eat_kw("SECURITY");
    } else {
        p.expect_kw("SECURITY")?;
    }
    p.expect_kw("INTEGRATION")
}

pub(crate) fn parse(stmt: &RawStatement) -> PResult<Stmt> {
    let lines = stmt.text.lines().count();
    let mut p = Parser {
        toks: &stmt.tokens,
        pos: 0,
        lines,
    };
    let Some(first) = p.peek() else {
        return Err(p.err());
    };
    let kw = match &first.tok {
        Tok::Ident {
            text,
            quoted: false,
        } => text.to_ascii_uppercase(),
        _ => return Err(p.err()),
    };
    p.pos += 1;
    let parsed = match kw.as_str() {
        "CREATE" => {
            let or_replace = if p.eat_kw("OR") {
                p.expect_kw("REPLACE")?;
                true
            } else {
                false
            };
            if !p.at_kw("SECURITY") && !p.at_kw("INTEGRATION") {
                return Err(p.err());
            }
            integration_kw(&mut p, true)?;
            let if_not_exists = if p.eat_kw("IF") {
                p.expect_kw("NOT")?;
                p.expect_kw("EXISTS")?;
                true
            } else {
                false
            };
            let name = p.ident()?;
            let props = p.props()?;
            Stmt::CreateIntegration {
                or_replace,
                if_not_exists,
                name,
                props,
            }
        }
        "ALTER" => {
            if p.eat_kw("USER") {
                let if_exists = if p.eat_kw("IF") {
                    p.expect_kw("EXISTS")?;
                    true
                } else {
                    false
                };
                let user = p.ident()?;
                if p.eat_kw("SET") {
                    let props = p.props()?;
                    if props.is_empty() {
                        return Err(p.err());
                    }
                    return Ok(Stmt::AlterUserSet {
                        if_exists,
                        user,
                        props,
                    });
                }
                if p.eat_kw("UNSET") {
                    let mut names = vec![p.ident()?];
                    while p.eat_sym(',') {
                        names.push(p.ident()?);
                    }
                    p.end()?;
                    return Ok(Stmt::AlterUserUnset {
                        if_exists,
                        user,
                        names,
                    });
                }
                p.expect_kw("REMOVE")?;
                p.expect_kw("DELEGATED")?;
                if !p.eat_kw("AUTHORIZATIONS") {
                    p.expect_kw("AUTHORIZATION")?;
                    p.expect_kw("OF")?;
                    p.expect_kw("ROLE")?;
                    p.ident()?;
                }
                p.expect_kw("FROM")?;
                integration_kw(&mut p, false)?;
                let integration = p.ident()?;
                p.end()?;
                return Ok(Stmt::RemoveDelegatedAuthorizations { user, integration });
            }
            if !p.at_kw("SECURITY") && !p.at_kw("INTEGRATION") {
                return Err(p.err());
            }
            integration_kw(&mut p, true)?;
            let if_exists = if p.eat_kw("IF") {
                p.expect_kw("EXISTS")?;
                true
            } else {
                false
            };
            let name = p.ident()?;
            if p.eat_kw("SET") {
                let props = p.props()?;
                if props.is_empty() {
                    return Err(p.err());
                }
                Stmt::AlterIntegrationSet {
                    if_exists,
                    name,
                    props,
                }
            } else if p.eat_kw("REFRESH") {
                let second = if p.eat_kw("OAUTH_CLIENT_SECRET") {
                    false
                } else if p.eat_kw("OAUTH_CLIENT_SECRET_2") {
                    true
                } else {
                    return Err(p.err());
                };
                Stmt::AlterIntegrationRefreshSecret {
                    if_exists,
                    name,
                    second,
                }
            } else {
                return Err(p.err());
            }
        }
        "DROP" => {
            if !p.at_kw("SECURITY") && !p.at_kw("INTEGRATION") {
                return Err(p.err());
            }
            integration_kw(&mut p, true)?;
            let if_exists = if p.eat_kw("IF") {
                p.expect_kw("EXISTS")?;
                true
            } else {
                false
            };
            let name = p.ident()?;
            Stmt::DropIntegration { if_exists, name }
        }
        "SHOW" => {
            p.eat_kw("SECURITY");
            p.expect_kw("INTEGRATIONS")?;
            let like = if p.eat_kw("LIKE") {
                Some(p.string()?)
            } else {
                None
            };
            Stmt::ShowIntegrations { like }
        }
        "DESC" | "DESCRIBE" => {
            if p.eat_kw("USER") {
                let user = p.ident()?;
                p.end()?;
                return Ok(Stmt::DescUser { user });
            }
            integration_kw(&mut p, true)?;
            let name = p.ident()?;
            Stmt::DescIntegration { name }
        }
        "USE" => {
            p.expect_kw("ROLE")?;
            let role = p.ident()?;
            Stmt::UseRole { role }
        }
        "SELECT" => {
            let mut items = Vec::new();
            loop {
                let start = p.peek().map_or(0, |t| t.start);
                let e = p.expr()?;
                let end = p.toks.get(p.pos.saturating_sub(1)).map_or(start, |t| t.end);
                let base = p.toks.first().map_or(0, |t| t.start);
                let written = &stmt.text[start - base..end - base];
                let alias = if p.eat_kw("AS") {
                    p.ident()?
                } else if let Some(Token {
                    tok: Tok::Ident { .. },
                    ..
                }) = p.peek()
                {
                    p.ident()?
                } else {
                    column_name(written)
                };
                items.push((e, alias));
                if !p.eat_sym(',') {
                    break;
                }
            }
            Stmt::Select { items }
        }
        _ => return Err(syntax_error_at(Some(first), lines)),
    };
    p.end()?;
    Ok(parsed)
}

/// Snowflake names an un-aliased column after the expression as written, upper-cased
/// outside string literals.
fn column_name(written: &str) -> String {
    let mut out = String::new();
    let mut in_str = false;
    for c in written.chars() {
        if c == '\'' {
            in_str = !in_str;
        }
        if in_str {
            out.push(c)
        } else {
            out.push(c.to_ascii_uppercase())
        }
    }
    out
}
