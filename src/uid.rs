//! UIDs for the objects Argus writes (PS3.5 9.1): a configured root followed by a number derived
//! from a random UUID, kept within 64 characters. Under the root `2.25` this is the UUID-derived
//! form of PS3.5 B.2.

/// Makes a fresh UID under `root`.
pub fn generate(root: &str) -> String {
    let number = uuid::Uuid::new_v4().as_u128();
    let uid = format!("{root}.{number}");
    if uid.len() <= 64 {
        return uid;
    }

    // A long root leaves fewer digits: keep the low digits of the number, without a leading 0.
    let room = 64 - root.len() - 1;
    let digits = number.to_string();
    let tail = digits[digits.len() - room..].trim_start_matches('0');
    format!("{root}.{}", if tail.is_empty() { "1" } else { tail })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_valid_and_distinct() {
        let a = generate("2.25");
        let b = generate("1.2.826.0.1.3680043.10.999");

        assert!(a.starts_with("2.25.") && a.len() <= 64);
        assert!(b.len() <= 64);
        assert_ne!(a, generate("2.25"));
        assert!(b.split('.').all(|p| !p.is_empty() && (p == "0" || !p.starts_with('0'))));
    }
}
