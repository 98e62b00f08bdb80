//! Command-line argument helpers.

/// The value after `--name`, if given.
pub fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    args.windows(2).find(|w| w[0] == name).map(|w| w[1])
}

/// Whether the bare switch `--name` is given.
pub fn switch(args: &[&str], name: &str) -> bool {
    args.contains(&name)
}

/// A non-negative integer flag.
pub fn number(args: &[&str], name: &str) -> Result<Option<u64>, String> {
    flag(args, name)
        .map(|v| {
            v.parse()
                .map_err(|_| format!("{name} {v:?}: expected a whole number"))
        })
        .transpose()
}
