//! TOML input files (scenarios, what-if studies, bus-fault sets): one error
//! type that names the file, and the line and column of a TOML error.

use std::path::{Path, PathBuf};

/// An input file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path}: cannot read: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Toml { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// Reads a file, naming it in the error.
pub fn read(path: &Path) -> Result<String, FileError> {
    std::fs::read_to_string(path).map_err(|source| FileError::Io { path: path.to_owned(), source })
}

/// A TOML error in `text` (the contents of `path`) with its line and column.
pub fn toml_error(text: &str, path: &Path, e: &toml::de::Error) -> FileError {
    let (line, column) = e.span().map_or((0, 0), |span| line_col(text, span.start));
    FileError::Toml { path: path.to_owned(), line, column, message: e.message().to_owned() }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_file_line_and_column() {
        let text = "a = 1\nb = = 2\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let msg = toml_error(text, Path::new("f.toml"), &e).to_string();
        assert!(msg.starts_with("f.toml:2:"), "{msg}");
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
    }
}
