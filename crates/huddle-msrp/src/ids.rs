//! Random identifiers: transaction ids (RFC 4975 §7.1) and message ids (§7.1.1).
//!
//! RFC 4975 §7.1: "the transaction identifier ... MUST be unique ... and SHOULD have
//! at least 64 bits of randomness". §7.1.1 asks the same uniqueness of Message-IDs.
//! huddle uses 96 bits from the operating system's CSPRNG, written as 16 characters of
//! an alphabet that is legal in both (`ident` characters: ALPHANUM only here).

const ALPHABET: &[u8; 62] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// 16 random alphanumeric characters: 16 × log2(62) ≈ 95 bits of randomness.
pub fn random_token() -> String {
    let mut raw = [0u8; 16];
    // The OS RNG failing is an environment failure we cannot recover from; falling back
    // to a weak id would silently break the uniqueness MSRP relies on.
    getrandom::fill(&mut raw).expect("operating system random number generator failed");
    raw.iter()
        .map(|b| {
            // Rejection-free mapping: 256 % 62 = 8, a bias of < 1 bit over 16 chars,
            // still far above the 64-bit floor.
            ALPHABET[(*b as usize) % ALPHABET.len()] as char
        })
        .collect()
}

/// A new random transaction id (RFC 4975 §7.1).
pub fn new_transaction_id() -> String {
    random_token()
}

/// A new random Message-ID value (RFC 4975 §7.1.1).
pub fn new_message_id() -> String {
    random_token()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn tokens_are_alphanumeric_and_distinct() {
        let set: HashSet<_> = (0..1000).map(|_| random_token()).collect();
        assert_eq!(set.len(), 1000);
        assert!(
            set.iter()
                .all(|t| t.len() == 16 && t.bytes().all(|b| b.is_ascii_alphanumeric()))
        );
    }
}
