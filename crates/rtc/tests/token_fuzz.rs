//! The token parser against random and mutated input: it never panics, and nothing but an issued
//! token, unchanged, is ever accepted.

use colloquy_rtc::token::TokenSigner;
use proptest::prelude::*;

const NOW: u64 = 1_800_000_000;

fn signer() -> TokenSigner {
    TokenSigner::new(b"fuzz-secret")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_strings_are_refused_without_panicking(token in "\\PC{0,200}") {
        prop_assert!(signer().verify(&token, NOW).is_err());
    }

    #[test]
    fn dotted_garbage_is_refused_without_panicking(parts in prop::collection::vec("[A-Za-z0-9_\\-]{0,24}", 0..8)) {
        let token = format!("v2.{}", parts.join("."));
        prop_assert!(signer().verify(&token, NOW).is_err());
    }

    #[test]
    fn any_change_to_a_token_is_refused(
        app in "[a-z0-9]{1,16}",
        channel in "[a-z0-9]{1,16}",
        uid in "[a-z0-9]{1,16}",
        position in any::<prop::sample::Index>(),
        replacement in any::<char>(),
        cut in any::<bool>(),
    ) {
        let signer = signer();
        let token = signer.issue(&app, &channel, &uid, NOW + 60);
        prop_assert!(signer.verify_for(&token, &channel, NOW).is_ok());
        let mut chars: Vec<char> = token.chars().collect();
        let at = position.index(chars.len());
        if cut {
            chars.truncate(at);
        } else {
            prop_assume!(chars[at] != replacement);
            chars[at] = replacement;
        }
        let mutated: String = chars.into_iter().collect();
        // base64url without padding can encode the same bytes with a different last character's
        // low bits; only the signature's last character can vary so (the rest is signed as text),
        // and such a token is honestly valid.
        if let Ok(grant) = signer.verify(&mutated, NOW) {
            prop_assert_eq!(
                (grant.app.as_str(), grant.channel.as_str(), grant.uid.as_str()),
                (app.as_str(), channel.as_str(), uid.as_str())
            );
            prop_assert_eq!(mutated.rsplit_once('.').unwrap().0, token.rsplit_once('.').unwrap().0);
        }
    }
}
