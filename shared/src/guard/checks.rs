//! The arithmetic behind the detectors: checksums and structure rules that keep them from firing
//! on random digits. Pure functions over ASCII bytes.

/// Luhn (ISO/IEC 7812-1 annex B) over ASCII digits.
pub(crate) fn luhn(digits: &[u8]) -> bool {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(d - b'0');
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// Whether the digits have the length and issuer prefix of a major card network (Visa,
/// Mastercard, American Express, Discover, JCB, Diners Club, UnionPay) and pass Luhn.
pub(crate) fn card_number(digits: &[u8]) -> bool {
    let len = digits.len();
    if !(13..=19).contains(&len) || !luhn(digits) {
        return false;
    }
    let prefix = |n: usize| -> u32 {
        digits
            .iter()
            .take(n)
            .fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0'))
    };
    let (p1, p2, p3, p4) = (prefix(1), prefix(2), prefix(3), prefix(4));
    match p1 {
        4 => matches!(len, 13 | 16 | 19),
        5 => (51..=55).contains(&p2) && len == 16,
        2 => (2221..=2720).contains(&p4) && len == 16,
        3 => {
            ((p2 == 34 || p2 == 37) && len == 15)
                || ((3528..=3589).contains(&p4) && len >= 16)
                || (((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39) && len >= 14)
        }
        6 => (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || p2 == 62) && len >= 16,
        _ => false,
    }
}

/// IBAN lengths by country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BI", 27),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DJ", 27),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FK", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"LY", 25),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MN", 20),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NI", 28),
    (b"NL", 18),
    (b"NO", 15),
    (b"OM", 23),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"RU", 33),
    (b"SA", 24),
    (b"SC", 31),
    (b"SD", 18),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"SO", 23),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
    (b"YE", 30),
];

/// The IBAN length of a country code (uppercase), if it issues IBANs.
pub(crate) fn iban_length(country: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(cc, _)| cc.as_slice() == country)
        .map(|(_, n)| *n)
}

/// ISO 13616: uppercase alphanumerics of the country's length whose check digits pass mod-97.
pub(crate) fn iban(alnum: &[u8]) -> bool {
    let &[c1, c2, d1, d2, ref rest @ ..] = alnum else {
        return false;
    };
    if iban_length(&[c1, c2]) != Some(alnum.len()) {
        return false;
    }
    if !d1.is_ascii_digit() || !d2.is_ascii_digit() {
        return false;
    }
    // Move the first four characters to the end, letters become 10..=35, the number mod 97 is 1.
    let mut rem = 0u32;
    for &c in rest.iter().chain(&[c1, c2, d1, d2]) {
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// SSA rules: area 001-899 except 666, group 01-99, serial 0001-9999; and not one of the numbers
/// famously printed in advertising (078-05-1120, 219-09-9999) that the SSA voided.
pub(crate) fn us_ssn(area: u32, group: u32, serial: u32) -> bool {
    let area_ok = (1..=899).contains(&area) && area != 666;
    let voided = matches!((area, group, serial), (78, 5, 1120) | (219, 9, 9999));
    area_ok && (1..=99).contains(&group) && (1..=9999).contains(&serial) && !voided
}

/// Dotted-quad IPv4 as RFC 6943 recommends reading it: four decimal octets 0-255 without
/// leading zeros (an octet like `010` is ambiguous: octal in some parsers).
pub(crate) fn ipv4(s: &str) -> bool {
    let mut n = 0;
    for part in s.split('.') {
        n += 1;
        let ok = !part.is_empty()
            && part.len() <= 3
            && part.bytes().all(|b| b.is_ascii_digit())
            && (part == "0" || !part.starts_with('0'))
            && part.parse::<u16>().is_ok_and(|v| v <= 255);
        if !ok {
            return false;
        }
    }
    n == 4
}

/// RFC 4291 text form (with RFC 5952 compression and an embedded IPv4 tail), via the standard
/// library's parser; the unspecified address `::` alone is not worth a redaction.
pub(crate) fn ipv6(s: &str) -> bool {
    s != "::" && s.parse::<core::net::Ipv6Addr>().is_ok()
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        // Always there: a byte indexes 256 counters.
        if let Some(count) = counts.get_mut(usize::from(b)) {
            *count += 1;
        }
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A token that looks machine-made: long, mixes lower case, upper case and digits, and has high
/// entropy (random base62/base64 of 32+ characters carries ~4.5-5 bits per character; English
/// identifiers, hex digests and UUIDs stay below the threshold).
pub(crate) fn random_token(bytes: &[u8]) -> bool {
    bytes.len() >= 32
        && bytes.iter().any(u8::is_ascii_lowercase)
        && bytes.iter().any(u8::is_ascii_uppercase)
        && bytes.iter().any(u8::is_ascii_digit)
        && entropy(bytes) >= 4.2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn luhn_matches_the_iso_examples() {
        // ISO/IEC 7812 worked example: 7992739871 has check digit 3.
        assert!(luhn(b"79927398713"));
        for wrong in [b"79927398710", b"79927398711", b"79927398719"] {
            assert!(!luhn(wrong));
        }
        assert!(!luhn(b""));
        assert!(!luhn(b"12a4"));
    }

    #[test]
    fn card_numbers_need_network_length_and_luhn() {
        // Published test numbers of the networks.
        for good in [
            "4111111111111111",
            "4012888888881881",
            "5555555555554444",
            "2223003122003222",
            "378282246310005",
            "6011111111111117",
            "3530111333300000",
            "30569309025904",
            "6200000000000005",
        ] {
            assert!(card_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "4111111111111112",    // Luhn fails
            "1234567812345670",    // Luhn passes, no network starts with 1
            "5555555555554",       // Luhn passes, Mastercard prefix, but 13 digits
            "37828224631000",      // Amex truncated
            "4111111111111111111", // 19 digits, Luhn fails
            "7992739871300008",    // Luhn passes, prefix 7 belongs to no card network
        ] {
            assert!(!card_number(bad.as_bytes()), "{bad}");
        }
        // The near misses above that keep a valid checksum fail on network rules alone.
        for luhn_ok in ["1234567812345670", "5555555555554", "7992739871300008"] {
            assert!(luhn(luhn_ok.as_bytes()), "{luhn_ok}");
        }
    }

    #[test]
    fn iban_mod97_accepts_registry_examples_only() {
        for good in [
            "DE89370400440532013000",
            "GB82WEST12345698765432",
            "FR1420041010050500013M02606",
            "NL91ABNA0417164300",
            "BE68539007547034",
            "CH9300762011623852957",
            "NO9386011117947",
        ] {
            assert!(iban(good.as_bytes()), "{good}");
        }
        for bad in [
            "DE89370400440532013001", // one digit off
            "GB82WEST12345698765431",
            "GB28WEST12345698765432", // check digits swapped
            "DE8937040044053201300",  // length for DE is 22
            "XX89370400440532013000", // no such country
            "DE8X370400440532013000", // check digits must be digits
        ] {
            assert!(!iban(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn ssn_rules() {
        assert!(us_ssn(536, 22, 1234));
        assert!(us_ssn(1, 1, 1));
        assert!(us_ssn(899, 99, 9999));
        for (a, g, s) in [
            (0, 12, 3456),
            (666, 12, 3456),
            (900, 12, 3456),
            (987, 65, 4320),
            (123, 0, 4567),
            (123, 45, 0),
            (78, 5, 1120),
            (219, 9, 9999),
        ] {
            assert!(!us_ssn(a, g, s), "{a}-{g}-{s}");
        }
    }

    #[test]
    fn ip_addresses_follow_the_rfcs() {
        for good in ["192.0.2.1", "10.0.0.255", "0.0.0.0", "255.255.255.255"] {
            assert!(ipv4(good), "{good}");
        }
        for bad in [
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.1000",
        ] {
            assert!(!ipv4(bad), "{bad}");
        }
        for good in [
            "2001:db8::1",
            "::1",
            "fe80::1ff:fe23:4567:890a",
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "::ffff:192.0.2.128",
        ] {
            assert!(ipv6(good), "{good}");
        }
        for bad in [
            "::",
            "2001:db8:::1",
            "1:2:3:4:5:6:7:8:9",
            "12:30:45",
            "g::1",
            "1::2::3",
        ] {
            assert!(!ipv6(bad), "{bad}");
        }
    }

    #[test]
    fn random_tokens_but_not_words_or_digests() {
        assert!(random_token(b"Zx8Qw2Lm9Rt4Yp6Vn3Kb7Hs1Jd5Fg0Ac"));
        assert!(!random_token(b"ThisIsAVeryLongCamelCaseIdentifierName"));
        assert!(!random_token(
            b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        ));
        assert!(!random_token(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaA1"));
        assert!((entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
