//! Errors of the loader: one [`Problem`] per bad file or document, all
//! reported together.

use std::fmt;
use std::path::PathBuf;

/// Why resources could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// A resources directory could not be listed.
    #[error("cannot read resources directory {}: {source}", dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Some files or documents are invalid; every problem found is listed.
    #[error("{}", describe(problems))]
    Invalid {
        /// The problems, in file and document order.
        problems: Vec<Problem>,
    },
}

fn describe(problems: &[Problem]) -> String {
    match problems {
        [single] => format!("invalid resource: {single}"),
        many => {
            let mut text = format!("{} invalid resources:", many.len());
            for problem in many {
                text.push_str("\n  - ");
                text.push_str(&problem.to_string());
            }
            text
        }
    }
}

/// One problem in one resource file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub file: PathBuf,
    /// 1-based index of the YAML document in the file, when the problem
    /// belongs to one document.
    pub document: Option<usize>,
    /// Path of the offending field, e.g. `spec.metadata[2].name` (list
    /// indexes 0-based), when the problem belongs to one field.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.file.display())?;
        if let Some(document) = self.document {
            write!(formatter, ": document {document}")?;
        }
        if let Some(field) = &self.field {
            write!(formatter, ": field `{field}`")?;
        }
        write!(formatter, ": {}", self.message)
    }
}
