//! The lists of tests [`conformance_tests!`](crate::conformance_tests) and
//! [`sql_conformance_tests!`](crate::sql_conformance_tests) run are kept by hand: these tests read
//! the suite's source files and fail, naming them, when a public test is missing from its list (a
//! name listed without a test already fails to compile where the macro is used).

use std::collections::BTreeSet;
use std::path::Path;

/// Every source file of the suite, by file name.
fn sources() -> Vec<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/conformance");
    let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path.file_name().expect("a file name").to_string_lossy().into_owned(), text)
        })
        .collect();
    files.sort();
    assert!(files.iter().any(|(name, _)| name == "mod.rs"), "no mod.rs in {}", dir.display());
    files
}

/// The public tests in `source`: each `pub async fn <name>…(<parameter>) {` at the start of a line
/// whose only parameter is `parameter` (spaces and line breaks aside), as rustfmt writes it.
fn public_tests(source: &str, parameter: &str) -> BTreeSet<String> {
    let parameter: String = parameter.split_whitespace().collect();
    let mut tests = BTreeSet::new();
    let mut rest = source;
    while let Some(at) = rest.find("\npub async fn ") {
        rest = &rest[at + "\npub async fn ".len()..];
        let signature: String = rest[..rest.find('{').unwrap_or(rest.len())].split_whitespace().collect();
        // A `where` clause follows the parameters.
        let signature = signature.find(")where").map_or(signature.as_str(), |at| &signature[..=at]);
        let name_end = signature.find(['<', '(']).unwrap_or(signature.len());
        let params = signature.rfind('(').map_or("", |open| &signature[open + 1..]);
        let params = params.trim_end_matches(')').trim_end_matches(',');
        if params == parameter {
            tests.insert(signature[..name_end].to_string());
        }
    }
    tests
}

/// The names `macro_name`'s first arm passes to its `@each` arm, comments aside.
fn listed(source: &str, macro_name: &str) -> Vec<String> {
    let start = format!("$crate::{macro_name}!(@each $make;");
    let at = source.find(&start).unwrap_or_else(|| panic!("no `{start}` in the source"));
    let list = &source[at + start.len()..];
    let list = &list[..list.find(");").unwrap_or_else(|| panic!("`{start}` is not closed"))];
    list.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .flat_map(|line| line.split(','))
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(str::to_string)
        .collect()
}

/// What is wrong with `list` against `tests`: missing, unknown or repeated names.
fn problems(list: &[String], tests: &BTreeSet<String>) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut problems: Vec<String> =
        list.iter().filter(|name| !seen.insert(name.as_str())).map(|name| format!("{name} is listed twice")).collect();
    problems
        .extend(tests.iter().filter(|name| !seen.contains(name.as_str())).map(|name| format!("{name} is not listed")));
    problems
        .extend(seen.iter().filter(|name| !tests.contains(**name)).map(|name| format!("{name} is not a public test")));
    problems
}

/// Checks `macro_name`'s list (in `list_file`) against the public tests taking `parameter`.
fn check(macro_name: &str, list_file: &str, parameter: &str) -> Result<usize, Vec<String>> {
    let files = sources();
    let tests: BTreeSet<String> = files.iter().flat_map(|(_, text)| public_tests(text, parameter)).collect();
    let list_source = &files.iter().find(|(name, _)| name == list_file).expect("the list's file").1;
    let problems = problems(&listed(list_source, macro_name), &tests);
    if problems.is_empty() { Ok(tests.len()) } else { Err(problems) }
}

#[test]
fn conformance_tests_runs_every_public_test_of_the_suite() {
    match check("conformance_tests", "mod.rs", "store: &Store<S>") {
        Ok(count) => assert!(count > 60, "only {count} tests found: is the signature pattern still right?"),
        Err(problems) => panic!("conformance_tests! in conformance/mod.rs:\n  {}", problems.join("\n  ")),
    }
}

#[test]
fn sql_conformance_tests_runs_every_public_test_of_the_sql_module() {
    match check("sql_conformance_tests", "sql.rs", "db: &F") {
        Ok(count) => assert!(count >= 7, "only {count} tests found: is the signature pattern still right?"),
        Err(problems) => panic!("sql_conformance_tests! in conformance/sql.rs:\n  {}", problems.join("\n  ")),
    }
}

/// The check itself: a name taken out of a list, a name listed twice and a name that is no test
/// are each reported.
#[test]
fn a_name_missing_from_a_list_is_reported() {
    let source = "\n/// Doc.\npub async fn kept<S: Storage>(store: &Store<S>) {}\n\
                  pub async fn dropped<S: Storage + Clone>(\n    store: &Store<S>,\n) {\n}\n\
                  pub async fn helper<S: Storage>(store: &Store<S>, n: u32) {}\n\
                  pub(crate) async fn private<S: Storage>(store: &Store<S>) {}\n\
                  macro_rules! m { () => { $crate::m!(@each $make;\n    // area\n    kept, kept, ghost\n); } }\n";
    let tests = public_tests(source, "store: &Store<S>");
    assert_eq!(tests, BTreeSet::from(["dropped".to_string(), "kept".to_string()]));
    let list = listed(source, "m");
    assert_eq!(list, ["kept", "kept", "ghost"]);
    assert_eq!(
        problems(&list, &tests),
        ["kept is listed twice", "dropped is not listed", "ghost is not a public test"],
    );
}
