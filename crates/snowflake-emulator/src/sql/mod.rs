//! The SQL the emulator understands: security integrations, client secrets, a few
//! context functions, and removing delegated authorizations.

mod exec;
mod parse;

use serde::Serialize;

pub(crate) use exec::execute_script;

/// How many statements `script` holds (1 when it does not even lex: the error comes later).
pub(crate) fn parse_count(script: &str) -> usize {
    parse::split(script).map_or(1, |v| v.len())
}

/// A result column: Snowflake's lower-case type names (`text`, `fixed`, `boolean`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Rows of strings (or NULL), as the SQL API returns them.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ResultSet {
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Option<String>>>,
}

impl ResultSet {
    pub(crate) fn new(columns: &[(&str, &str)]) -> Self {
        ResultSet {
            columns: columns
                .iter()
                .map(|(n, t)| Column {
                    name: (*n).to_string(),
                    type_name: (*t).to_string(),
                })
                .collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn status(message: impl Into<String>) -> Self {
        let mut rs = ResultSet::new(&[("status", "text")]);
        rs.rows.push(vec![Some(message.into())]);
        rs
    }

    /// The value in `row`, column `name` (exact name).
    pub fn get(&self, row: usize, name: &str) -> Option<&str> {
        let col = self.columns.iter().position(|c| c.name == name)?;
        self.rows.get(row)?.get(col)?.as_deref()
    }
}

/// A Snowflake error: `code` like `"001003"`, `sql_state` like `"42000"`, the message text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{code} ({sql_state}): {message}")]
pub struct SqlError {
    pub code: String,
    pub sql_state: String,
    pub message: String,
}

impl SqlError {
    pub(crate) fn new(code: &str, sql_state: &str, message: impl Into<String>) -> Self {
        SqlError {
            code: code.to_string(),
            sql_state: sql_state.to_string(),
            message: message.into(),
        }
    }

    pub(crate) fn syntax(detail: impl Into<String>) -> Self {
        SqlError::new(
            "001003",
            "42000",
            format!("SQL compilation error:\n{}", detail.into()),
        )
    }

    pub(crate) fn invalid_value(detail: impl Into<String>) -> Self {
        SqlError::new(
            "001008",
            "22023",
            format!("SQL compilation error:\n{}", detail.into()),
        )
    }

    pub(crate) fn insufficient_privileges(account: &str) -> Self {
        SqlError::new(
            "003001",
            "42501",
            format!(
                "SQL access control error:\nInsufficient privileges to operate on account '{account}'"
            ),
        )
    }

    pub(crate) fn already_exists(name: &str) -> Self {
        SqlError::new(
            "002002",
            "42710",
            format!("SQL compilation error:\nObject '{name}' already exists."),
        )
    }

    pub(crate) fn does_not_exist(name: &str) -> Self {
        SqlError::new(
            "002003",
            "02000",
            format!(
                "SQL compilation error:\nIntegration '{name}' does not exist or not authorized."
            ),
        )
    }
}

/// What one statement produced: rows, or Snowflake's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SqlOutcome {
    Rows(ResultSet),
    Error(SqlError),
}

impl SqlOutcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, SqlOutcome::Rows(_))
    }

    pub fn rows(&self) -> Option<&ResultSet> {
        match self {
            SqlOutcome::Rows(rs) => Some(rs),
            SqlOutcome::Error(_) => None,
        }
    }

    pub fn error(&self) -> Option<&SqlError> {
        match self {
            SqlOutcome::Rows(_) => None,
            SqlOutcome::Error(e) => Some(e),
        }
    }

    /// The first column of the first row, if any (handy for `SELECT f()`).
    pub fn first_value(&self) -> Option<&str> {
        self.rows()?.rows.first()?.first()?.as_deref()
    }
}

impl From<Result<ResultSet, SqlError>> for SqlOutcome {
    fn from(r: Result<ResultSet, SqlError>) -> Self {
        match r {
            Ok(rs) => SqlOutcome::Rows(rs),
            Err(e) => SqlOutcome::Error(e),
        }
    }
}

/// One statement of a script with its outcome (what the worksheet shows).
#[derive(Debug, Clone, Serialize)]
pub struct StatementRun {
    pub sql: String,
    pub outcome: SqlOutcome,
}

/// Who runs the SQL: the user and the session's current role.
#[derive(Debug, Clone)]
pub(crate) struct SqlSession {
    pub user: String,
    pub role: String,
}
