//! Markdown tables, as the benchmark and the fault reports write them: a header row, an
//! alignment row, one line per row.

use std::fmt::Display;

/// A table being written.
pub struct Table {
    out: String,
}

impl Table {
    /// A table with these column headers; `align` has one letter per column: `l` (left, `---`)
    /// or `r` (right, `---:`).
    pub fn new<H: AsRef<str>>(headers: &[H], align: &str) -> Self {
        let mut out = String::new();
        line(&mut out, headers.iter().map(AsRef::as_ref));
        out.push('|');
        for (i, _) in headers.iter().enumerate() {
            out.push_str(match align.as_bytes().get(i) {
                Some(b'r') => "---:|",
                _ => "---|",
            });
        }
        out.push('\n');
        Self { out }
    }

    /// Adds a row.
    pub fn row<C: Display>(&mut self, cells: impl IntoIterator<Item = C>) {
        line(&mut self.out, cells);
    }

    /// The table, each line ending with a newline.
    pub fn finish(self) -> String {
        self.out
    }
}

fn line<C: Display>(out: &mut String, cells: impl IntoIterator<Item = C>) {
    use std::fmt::Write as _;
    out.push('|');
    for cell in cells {
        let _ = write!(out, " {cell} |");
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_headers_alignment_and_rows() {
        let mut table = Table::new(&["name", "count"], "lr");
        table.row(["a", "1"]);
        table.row([String::from("b"), 2.to_string()]);
        assert_eq!(
            table.finish(),
            "| name | count |\n|---|---:|\n| a | 1 |\n| b | 2 |\n"
        );
    }
}
