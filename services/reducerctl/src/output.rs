//! Rendering of answers. A command builds one [`Record`] (named fields in a fixed order) and
//! the [`Printer`] turns it into aligned text for a person or one JSON object per line for a
//! script, so the two forms always carry the same fields.

use std::io::Write;

use serde_json::{Map, Value as Json};

/// Named fields of an answer, in display order.
#[derive(Debug, Default)]
pub struct Record {
    fields: Vec<(&'static str, Json)>,
}

impl Record {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a field.
    pub fn field(mut self, name: &'static str, value: impl Into<Json>) -> Self {
        self.fields.push((name, value.into()));
        self
    }

    /// Adds a text field only when it is not empty (for example a rejection reason).
    pub fn non_empty(self, name: &'static str, value: &str) -> Self {
        if value.is_empty() {
            return self;
        }
        self.field(name, value)
    }

    /// The record as one JSON object.
    pub fn to_json(&self) -> Json {
        Json::Object(
            self.fields
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect::<Map<_, _>>(),
        )
    }
}

/// Writes answers to stdout as text or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    json: bool,
}

impl Printer {
    /// A printer for `--json` (`json = true`) or human-readable text.
    pub fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether answers print as JSON.
    pub fn is_json(&self) -> bool {
        self.json
    }

    /// A line of text for a person; nothing under `--json`.
    pub fn text(&self, text: &str) -> std::io::Result<()> {
        if self.json { Ok(()) } else { emit(text) }
    }

    /// One answer: a JSON line, or one `name  value` line per field.
    pub fn record(&self, record: &Record) -> std::io::Result<()> {
        if self.json {
            return emit(&record.to_json().to_string());
        }
        let width = record.fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
        let text = record
            .fields
            .iter()
            .map(|(name, value)| format!("{name:<width$}  {}", human(value)))
            .collect::<Vec<_>>()
            .join("\n");
        emit(&text)
    }

    /// One item of a stream: a JSON line, or `first name=value name=value …` on one line.
    pub fn line(&self, record: &Record) -> std::io::Result<()> {
        if self.json {
            return emit(&record.to_json().to_string());
        }
        let mut parts = record.fields.iter();
        let Some((_, first)) = parts.next() else {
            return Ok(());
        };
        let rest = parts.map(|(name, value)| format!("{name}={}", human(value)));
        let text = std::iter::once(human(first)).chain(rest).collect::<Vec<_>>().join(" ");
        emit(&text)
    }

    /// A list: `{"<key>": [...]}` as JSON, or a table with a header row (or `empty` when
    /// there are no rows).
    pub fn table(&self, key: &str, rows: &[Record], empty: &str) -> std::io::Result<()> {
        if self.json {
            let list = Json::Array(rows.iter().map(Record::to_json).collect());
            return emit(&serde_json::json!({ key: list }).to_string());
        }
        let Some(first) = rows.first() else {
            return emit(empty);
        };
        let header: Vec<String> = first.fields.iter().map(|(name, _)| name.to_uppercase()).collect();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| row.fields.iter().map(|(_, value)| human(value)).collect())
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|column| {
                std::iter::once(&header)
                    .chain(&cells)
                    .filter_map(|row| row.get(column).map(String::len))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let render = |row: &Vec<String>| {
            row.iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect::<Vec<_>>()
                .join("  ")
                .trim_end()
                .to_owned()
        };
        let text = std::iter::once(&header)
            .chain(&cells)
            .map(render)
            .collect::<Vec<_>>()
            .join("\n");
        emit(&text)
    }
}

/// A value as a person reads it: text bare, absent or empty as `-`, structures as compact JSON.
fn human(value: &Json) -> String {
    match value {
        Json::String(text) if !text.is_empty() => text.clone(),
        Json::Null | Json::String(_) => "-".to_owned(),
        other => other.to_string(),
    }
}

fn emit(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    // A follower (`subscribe`) must show each line as it arrives, even through a pipe.
    out.flush()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn human_values_are_bare_text_or_compact_json() {
        assert_eq!(human(&json!("ana")), "ana");
        assert_eq!(human(&Json::Null), "-");
        assert_eq!(human(&json!("")), "-");
        assert_eq!(human(&json!(42)), "42");
        assert_eq!(human(&json!({"total": 42})), r#"{"total":42}"#);
    }

    #[test]
    fn records_keep_their_fields_in_json() {
        let record = Record::new()
            .field("version", 3_u64)
            .non_empty("rejection_reason", "")
            .field("state", json!({"a": 1}));
        assert_eq!(record.to_json(), json!({"version": 3, "state": {"a": 1}}));
    }
}
