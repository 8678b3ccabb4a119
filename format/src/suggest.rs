//! "Did you mean …?" for a misspelt name: the one closest known name, or none.
//!
//! ```
//! use llamapack_format::suggest::closest;
//!
//! let names = ["q4_k_m", "q4_k_s", "q8_0"];
//! assert_eq!(closest("q4km", names), Some("q4_k_m")); // same letters and digits
//! assert_eq!(closest("Q8-0", names), Some("q8_0"));
//! assert_eq!(closest("q8_1", names), Some("q8_0")); // one edit away
//! assert_eq!(closest("q8_0_k_m", names), None);
//! assert_eq!(closest("f61", ["f16", "bf16", "f32"]), Some("f16")); // two letters swapped
//! ```

/// The name of `names` closest to a misspelt `given`: one with the same letters and digits
/// (case, `_` and `-` ignored: `q4km`, `Q4-K-M`), else one within two edits of it and at least
/// twice as long as the distance. `None` when nothing is close.
pub fn closest<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let squash = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let sq = squash(given);
    let lower = given.to_ascii_lowercase();
    let names: Vec<&str> = names.into_iter().collect();
    if let Some(n) = names.iter().find(|n| !sq.is_empty() && squash(n) == sq) {
        return Some(n);
    }
    names
        .iter()
        .map(|n| (edit_distance(&lower, &n.to_ascii_lowercase()), *n))
        .filter(|&(d, n)| d <= 2 && 2 * d < n.len())
        .min_by_key(|&(d, _)| d)
        .map(|(_, n)| n)
}

/// ` (did you mean `x`?)` for [`closest`], or nothing.
pub fn hint<'a>(given: &str, names: impl IntoIterator<Item = &'a str>) -> String {
    closest(given, names)
        .map(|n| format!(" (did you mean `{n}`?)"))
        .unwrap_or_default()
}

/// Edit distance over chars: insertions, deletions, substitutions and swaps of two neighbours
/// (`f61` → `f16`) cost one each (optimal string alignment).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j]; rows i-2, i-1 and i are kept.
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (prev[j - 1] + cost).min(prev[j] + 1).min(cur[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(before[j - 2] + 1);
            }
            cur[j] = d;
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}
