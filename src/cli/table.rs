//! Aligned text tables, what every listing command prints.

use std::fmt::Write as _;

/// `rows` under `head`, each column as wide as its widest cell; `(none)` when there are no rows.
pub fn table(head: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: Vec<String>| {
        let cells: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    };
    line(&mut out, head.iter().map(|h| h.to_string()).collect());
    if rows.is_empty() {
        let _ = writeln!(out, "(none)");
    }
    for row in rows {
        line(&mut out, row);
    }
    out
}

/// A JSON value as a cell: strings unquoted, `-` for null.
pub fn cell(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// An optional value as a cell, `-` when absent.
pub fn optional(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_on_the_widest_cell() {
        let out = table(
            &["A", "BB"],
            vec![
                vec!["long cell".into(), "x".into()],
                vec!["y".into(), "z".into()],
            ],
        );
        assert_eq!(out, "A          BB\nlong cell  x\ny          z\n");
        assert_eq!(table(&["A"], vec![]), "A\n(none)\n");
    }
}
