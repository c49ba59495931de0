//! A client's name as the owner sees it. Whoever registers a client chooses its name, and the
//! owner decides on what the consent page and the Telegram prompt show, so the name is cleaned
//! of everything that could hide, reorder or break the text before it is stored or shown.

/// A client's name as the owner's pages and the Telegram prompt show it, or "Unnamed client"
/// when nothing is left. White space (line and paragraph separators included) becomes one
/// space, hidden characters go, and the ends are trimmed. Applied at registration and again
/// whenever a stored name is shown, so names registered before a rule was added are shown
/// clean too.
pub fn display_name(name: &str) -> String {
    let mut cleaned = String::new();
    let mut pending_space = false;
    for c in name.chars() {
        if c.is_whitespace() {
            pending_space = !cleaned.is_empty();
        } else if !is_hidden(c) {
            if pending_space {
                cleaned.push(' ');
                pending_space = false;
            }
            cleaned.push(c);
        }
    }
    if cleaned.is_empty() {
        "Unnamed client".into()
    } else {
        cleaned
    }
}

/// Whether `c` is a control character or an invisible format character (Unicode category Cf:
/// bidirectional overrides and isolates such as U+202E, zero-width characters, tags). Listed by
/// hand from Unicode 16 rather than pulling in a character database for one check (a Cf
/// character added by a later Unicode version passes until it is listed here).
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            u32::from(c),
            0x00AD
                | 0x0600..=0x0605
                | 0x061C
                | 0x06DD
                | 0x070F
                | 0x08E2
                | 0x180E
                | 0x200B..=0x200F
                | 0x202A..=0x202E
                | 0x2060..=0x2064
                | 0x2066..=0x206F
                | 0xFEFF
                | 0xFFF9..=0xFFFB
                | 0x110BD
                | 0x110CD
                | 0x13430..=0x1343F
                | 0x1BCA0..=0x1BCA3
                | 0x1D173..=0x1D17A
                | 0xE0001
                | 0xE0020..=0xE007F
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_names_lose_invisible_and_reordering_characters() {
        // U+202E reverses what follows: "Evil\u{202E}moc.elgoog" shows as "Evilgoogle.com".
        assert_eq!(display_name("Evil\u{202E}moc.elgoog"), "Evilmoc.elgoog");
        assert_eq!(display_name("Claude\u{2028}Desktop"), "Claude Desktop");
        assert_eq!(
            display_name("Claude\u{2029}\u{2029}Desktop"),
            "Claude Desktop"
        );
        assert_eq!(display_name("Cl\u{200B}au\u{FEFF}de\u{00AD}"), "Claude");
        assert_eq!(display_name("\u{2066}Claude\u{2069}\u{061C}"), "Claude");
        // Tag characters spell hidden text; the language tag U+E0001 too.
        assert_eq!(
            display_name("Claude\u{E0001}\u{E0041}\u{E0042}\u{E007F}"),
            "Claude"
        );
        assert_eq!(
            display_name("  Claude \t\n  Code\u{00A0}\u{3000}app  "),
            "Claude Code app"
        );
        assert_eq!(display_name("\u{1B}[31mRed\u{7F}\u{9B}"), "[31mRed");
        assert_eq!(display_name("\u{202E}\u{200B}\u{2028} "), "Unnamed client");
        // What is left of the text is kept as written, other scripts included.
        assert_eq!(
            display_name("Клод 克劳德 \u{1F916}"),
            "Клод 克劳德 \u{1F916}"
        );
    }

    #[test]
    fn every_listed_format_character_is_hidden() {
        let listed: &[(u32, u32)] = &[
            (0x00AD, 0x00AD),
            (0x0600, 0x0605),
            (0x061C, 0x061C),
            (0x06DD, 0x06DD),
            (0x070F, 0x070F),
            (0x08E2, 0x08E2),
            (0x180E, 0x180E),
            (0x200B, 0x200F),
            (0x202A, 0x202E),
            (0x2060, 0x2064),
            (0x2066, 0x206F),
            (0xFEFF, 0xFEFF),
            (0xFFF9, 0xFFFB),
            (0x110BD, 0x110BD),
            (0x110CD, 0x110CD),
            (0x13430, 0x1343F),
            (0x1BCA0, 0x1BCA3),
            (0x1D173, 0x1D17A),
            (0xE0001, 0xE0001),
            (0xE0020, 0xE007F),
        ];
        for &(first, last) in listed {
            for code in first..=last {
                let c = char::from_u32(code).expect("a scalar value");
                assert!(is_hidden(c), "U+{code:04X} is not hidden");
            }
        }
        for visible in [
            'a',
            'é',
            '\u{00A0}',
            '\u{2010}',
            '\u{2065}',
            '\u{FFFC}',
            '\u{1F916}',
        ] {
            assert!(!is_hidden(visible), "{visible:?} is hidden");
        }
    }
}
