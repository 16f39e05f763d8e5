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

/// The TOML files named by `paths`, as the command line gives them (any
/// number of files and directories, as `cargo test` and `pytest` take paths):
/// a file as it is, a directory's `*.toml` files sorted by name; in the order
/// given, each file once.
pub fn toml_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, FileError> {
    let mut files: Vec<PathBuf> = Vec::new();
    for path in paths {
        let found = if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|source| FileError::Io { path: path.clone(), source })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            found.sort();
            if found.is_empty() {
                return Err(FileError::Invalid { path: path.clone(), message: "no *.toml files in it".into() });
            }
            found
        } else if path.exists() {
            vec![path.clone()]
        } else {
            return Err(FileError::Invalid { path: path.clone(), message: "no such file or directory".into() });
        };
        for f in found {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }
    Ok(files)
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

/// 1-based line and column of the byte offset `at` in `text`, as an editor
/// shows them (and as rustc reports them): the column counts characters,
/// not bytes, so a multi-byte character before the error counts once. An
/// offset inside a character is that character's; past the end, the end.
pub fn line_col(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
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
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 99), (1, 3));
        assert_eq!(line_col("é\nx", 1), (1, 1), "inside a character: its start");
    }

    /// Issue 14: one `line_col` for every input file, counting characters:
    /// the column of an error after a multi-byte character is the one an
    /// editor shows, not its byte offset.
    #[test]
    fn issue_14_the_column_after_a_multi_byte_character_counts_it_once() {
        let text = "name = \"x\"\ndescription = \"µ°Ω\" = 2\n";
        let e = toml::from_str::<toml::Table>(text).unwrap_err();
        let FileError::Toml { line, column, .. } = toml_error(text, Path::new("f.toml"), &e) else {
            panic!("not a TOML error")
        };
        // `description = "µ°Ω" ` is 20 characters (23 bytes): the stray `=` is in column 21.
        assert_eq!((line, column), (2, 21), "{e}");
        assert_eq!(line_col("αβ = 1", "αβ = 1".find('=').unwrap()), (1, 4));
    }
}

#[cfg(test)]
mod path_tests {
    use super::*;

    #[test]
    fn issue_17_many_files_and_directories_are_taken_in_order_each_once() {
        let dir = std::env::temp_dir().join(format!("smartpro-paths-{}", std::process::id()));
        let sub = dir.join("lib");
        std::fs::create_dir_all(&sub).unwrap();
        for f in ["b.toml", "a.toml", "notes.md"] {
            std::fs::write(sub.join(f), "").unwrap();
        }
        let single = dir.join("z.toml");
        std::fs::write(&single, "").unwrap();
        let got = toml_files(&[single.clone(), sub.clone(), sub.join("a.toml")]).unwrap();
        assert_eq!(got, vec![single, sub.join("a.toml"), sub.join("b.toml")]);
        let missing = toml_files(&[dir.join("nope.toml")]).unwrap_err().to_string();
        assert!(missing.contains("nope.toml") && missing.contains("no such file"), "{missing}");
        std::fs::remove_file(sub.join("a.toml")).unwrap();
        std::fs::remove_file(sub.join("b.toml")).unwrap();
        let empty = toml_files(std::slice::from_ref(&sub)).unwrap_err().to_string();
        assert!(empty.contains("no *.toml files"), "{empty}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
