//! Every table has one owner, a module of `crates/common/src/store` (the
//! module of its own name unless [`SHARED_OWNERS`] says otherwise), and the
//! workspace's SQL keeps to it:
//! - only the owner writes the table (INSERT, UPDATE, DELETE, COPY,
//!   TRUNCATE);
//! - no SQL outside the store names a table;
//! - a store statement that reads another module's table (a join) names a
//!   table of its own module too: a query lives with the rows it returns.
//!
//! Migrations, tests, benches and testkit (seed data for tests) are outside
//! the rule. The check reads the source as text: the SQL is every string
//! literal, comments and `#[cfg(test)]` parts left out.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

/// Tables owned by a module of another name, and why: each is only ever
/// read together with its owner's table.
const SHARED_OWNERS: &[(&str, &str)] = &[
    // A zone's place in a recipe: read only with the recipe's phases.
    ("zone_recipe_instances", "recipe_phases"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    Write,
}

/// One table a statement names.
#[derive(Debug)]
struct Use {
    file: String,
    access: Access,
    table: String,
    /// Every table its statement (string literal) names.
    statement_tables: BTreeSet<String>,
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The tables the migrations create.
fn tables(root: &Path) -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for entry in fs::read_dir(root.join("migrations")).expect("migrations/") {
        let sql = fs::read_to_string(entry.unwrap().path()).unwrap();
        let words = words(&sql);
        for (i, pair) in words.windows(2).enumerate() {
            if pair == ["CREATE", "TABLE"] {
                let mut name = &words[i + 2];
                if name == "IF" {
                    name = &words[i + 5]; // IF NOT EXISTS name
                }
                tables.insert(name.clone());
            }
        }
    }
    assert!(tables.len() > 10, "too few tables found: {tables:?}");
    tables
}

/// The `.rs` files under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs")
            && path.file_name().is_some_and(|n| n != "tests.rs")
        {
            out.push(path);
        }
    }
}

/// The production source files: every crate's and service's `src/`,
/// testkit's left out, with the path relative to the workspace.
fn production_files(root: &Path) -> Vec<(String, String)> {
    let mut files = Vec::new();
    for group in ["crates", "services"] {
        for krate in fs::read_dir(root.join(group)).unwrap() {
            let krate = krate.unwrap().path();
            if krate.file_name().is_some_and(|n| n != "testkit") {
                rust_files(&krate.join("src"), &mut files);
            }
        }
    }
    assert!(files.len() > 50, "too few source files found");
    files
        .into_iter()
        .map(|path| {
            let text = fs::read_to_string(&path).unwrap();
            let production = match text.find("#[cfg(test)]") {
                Some(at) => text[..at].to_owned(),
                None => text,
            };
            let relative = path.strip_prefix(root).unwrap().to_string_lossy();
            (relative.replace('\\', "/"), production)
        })
        .collect()
}

/// The SQL statements of Rust source `src`: each string literal's contents,
/// the literals of one `concat!(…)` joined into one statement; comments and
/// char literals skipped.
fn statements(src: &str) -> Vec<String> {
    let Scan { literals, parens } = scan(src);
    let mut out: Vec<String> = Vec::new();
    let mut joined_until = 0;
    for (start, text) in &literals {
        if *start < joined_until {
            out.last_mut().unwrap().push_str(text);
            continue;
        }
        out.push(text.clone());
        // A literal right after `concat!(` starts a statement that runs to
        // the matching `)`.
        let before = src[..*start].trim_end();
        if let Some(open) = before
            .strip_suffix("concat!(")
            .map(|b| b.len() + "concat!".len())
        {
            let mut depth = 0;
            for &(at, c) in parens.iter().filter(|(at, _)| *at >= open) {
                depth += if c == b'(' { 1 } else { -1 };
                if depth == 0 {
                    joined_until = at;
                    break;
                }
            }
        }
    }
    out
}

/// What [`scan`] finds in Rust source.
struct Scan {
    /// Each string literal: where it starts, and its contents.
    literals: Vec<(usize, String)>,
    /// Each parenthesis outside literals and comments, with where it is.
    parens: Vec<(usize, u8)>,
}

fn scan(src: &str) -> Scan {
    let b = src.as_bytes();
    let mut literals = Vec::new();
    let mut parens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                    i += 1;
                }
                i += 2;
            }
            b'\'' => {
                // A char literal ('x', '\n', '"') is skipped; a lifetime is not one.
                if b.get(i + 1) == Some(&b'\\') {
                    i += 2;
                    while i < b.len() && b[i] != b'\'' {
                        i += 1;
                    }
                    i += 1;
                } else if b.get(i + 2) == Some(&b'\'') {
                    i += 3;
                } else {
                    i += 1;
                }
            }
            b'r' if (i == 0 || !is_word(b[i - 1])) && matches!(b.get(i + 1), Some(b'"' | b'#')) => {
                let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
                let open = i + 1 + hashes;
                if b.get(open) != Some(&b'"') {
                    i += 1;
                    continue;
                }
                let close = format!("\"{}", "#".repeat(hashes));
                let body = &src[open + 1..];
                let end = open + 1 + body.find(&close).expect("raw string closes");
                literals.push((i, src[open + 1..end].to_owned()));
                i = end + close.len();
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                literals.push((start, src[start + 1..i].to_owned()));
                i += 1;
            }
            c @ (b'(' | b')') => {
                parens.push((i, c));
                i += 1;
            }
            _ => i += 1,
        }
    }
    Scan { literals, parens }
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The tables `statement` names, each with how: after INSERT INTO, UPDATE,
/// DELETE FROM, COPY or TRUNCATE it is written; after FROM or JOIN, read.
/// Keywords count in capitals only, as the project writes SQL, so prose in
/// messages ("read from nodes") is not taken for it.
fn accesses(statement: &str, tables: &BTreeSet<String>) -> Vec<(Access, String)> {
    let words = words(statement);
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let deleting = i > 0 && words[i - 1] == "DELETE";
        let access = match word.as_str() {
            "INTO" | "UPDATE" | "COPY" | "TRUNCATE" => Access::Write,
            "FROM" if deleting => Access::Write,
            "FROM" | "JOIN" => Access::Read,
            _ => continue,
        };
        let mut next = i + 1;
        while words
            .get(next)
            .is_some_and(|w| w == "TABLE" || w == "ONLY" || w == "LATERAL")
        {
            next += 1;
        }
        if let Some(table) = words.get(next).filter(|w| tables.contains(*w)) {
            found.push((access, table.clone()));
        }
    }
    found
}

/// Every table the production source names in SQL.
fn uses(root: &Path, tables: &BTreeSet<String>) -> Vec<Use> {
    let mut uses = Vec::new();
    for (file, text) in production_files(root) {
        for statement in statements(&text) {
            let found = accesses(&statement, tables);
            let statement_tables: BTreeSet<String> = found.iter().map(|(_, t)| t.clone()).collect();
            for (access, table) in found {
                uses.push(Use {
                    file: file.clone(),
                    access,
                    table,
                    statement_tables: statement_tables.clone(),
                });
            }
        }
    }
    uses
}

const STORE: &str = "crates/common/src/store/";

/// The store module a file belongs to (`store/nodes/view.rs` → `nodes`), if
/// it is in the store.
fn store_module(file: &str) -> Option<&str> {
    let rest = file.strip_prefix(STORE)?;
    Some(match rest.split_once('/') {
        Some((dir, _)) => dir,
        None => rest.strip_suffix(".rs").unwrap_or(rest),
    })
}

fn owner(table: &str) -> &str {
    SHARED_OWNERS
        .iter()
        .find(|(t, _)| *t == table)
        .map_or(table, |(_, module)| module)
}

#[test]
fn every_table_has_its_owner_module() {
    let root = workspace();
    let missing: Vec<String> = tables(&root)
        .iter()
        .filter(|t| {
            let module = root.join(STORE).join(owner(t));
            !module.with_extension("rs").is_file() && !module.is_dir()
        })
        .cloned()
        .collect();
    assert!(
        missing.is_empty(),
        "tables without a store module of their name (or an entry in SHARED_OWNERS): {missing:?}"
    );
}

#[test]
fn sql_keeps_to_the_owners() {
    let root = workspace();
    let tables = tables(&root);
    let uses = uses(&root, &tables);
    assert!(
        uses.iter().any(|u| u.access == Access::Write)
            && uses.iter().any(|u| u.access == Access::Read),
        "no SQL found: the check reads nothing"
    );
    let mut wrong = Vec::new();
    for u in &uses {
        let owner = owner(&u.table);
        match store_module(&u.file) {
            None => wrong.push(format!("{}: names `{}` outside the store", u.file, u.table)),
            Some(module) if module == owner => {}
            Some(_) if u.access == Access::Write => wrong.push(format!(
                "{}: writes `{}`, which only store::{owner} may write",
                u.file, u.table
            )),
            Some(module) if !u.statement_tables.iter().any(|t| self::owner(t) == module) => {
                wrong.push(format!(
                    "{}: reads `{}` without a table of its own module: the statement belongs in store::{owner}",
                    u.file, u.table
                ))
            }
            Some(_) => {}
        }
    }
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "SQL outside its owner:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_reader_finds_what_it_must() {
    let tables: BTreeSet<String> = ["nodes", "zones", "node_binds"].map(String::from).into();
    let src = r####"
        // "INSERT INTO zones" in a comment is not SQL
        let c = '"';
        let q = "UPDATE nodes SET zone_id = z.id FROM zones z WHERE x";
        let r = r#"DELETE FROM node_binds b JOIN zones"#;
        let prose = "read from nodes";
        let spliced = concat!("SELECT 1 FROM nodes n WHERE ", route!(), " AND (SELECT 1 FROM zones)");
    "####;
    let found: Vec<Vec<(Access, String)>> = statements(src)
        .iter()
        .map(|s| accesses(s, &tables))
        .collect();
    let w = |t: &str| (Access::Write, t.to_owned());
    let r = |t: &str| (Access::Read, t.to_owned());
    assert_eq!(
        found,
        vec![
            vec![w("nodes"), r("zones")],
            vec![w("node_binds"), r("zones")],
            vec![],
            vec![r("nodes"), r("zones")],
        ]
    );
    assert_eq!(
        store_module("crates/common/src/store/nodes/view.rs"),
        Some("nodes")
    );
    assert_eq!(
        store_module("crates/common/src/store/zones.rs"),
        Some("zones")
    );
    assert_eq!(store_module("services/scheduler/src/tick/mod.rs"), None);
}
