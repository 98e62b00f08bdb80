//! The price table: USD per million tokens, in integer micro-dollars, per provider and model, with
//! effective dates and a version id. Operators update it as data (KV `prices:current`, or the
//! built-in `data/prices.json`); it is validated like all config.

use serde_json::Value;

use super::period::parse_instant;
use crate::audit::Usage;
use crate::validate::{self as walk, ConfigErrors};

pub const PRICE_FIELDS: &[&str] = &["$schema", "version", "prices", "surcharges"];
pub const PRICE_ENTRY_FIELDS: &[&str] = &[
    "provider",
    "model",
    "effective_from",
    "input_per_mtok_usd_micros",
    "output_per_mtok_usd_micros",
    "cached_input_per_mtok_usd_micros",
    "cache_write_per_mtok_usd_micros",
    "max_output_tokens",
];
pub const SURCHARGE_FIELDS: &[&str] = &["provider", "endpoint_host", "basis_points", "note"];

/// The table compiled into every build; KV `prices:current` overrides it.
pub const BUILTIN_PRICES: &str = include_str!("../../data/prices.json");

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelPrice {
    pub provider: String,
    pub model: String,
    pub effective_from_ms: u64,
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub cache_write: u64,
    /// The most a response may hold: the worst case reserved when a request sets no limit.
    pub max_output_tokens: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Surcharge {
    pub provider: String,
    pub endpoint_host: String,
    /// 1000 = +10%.
    pub basis_points: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PriceTable {
    pub version: String,
    prices: Vec<ModelPrice>,
    surcharges: Vec<Surcharge>,
}

/// What a request is priced at: the entry in force and the surcharge for its endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quote {
    pub price: ModelPrice,
    pub surcharge_bps: u64,
}

impl Quote {
    /// Cost in micro-USD, rounded up so a charge is never understated.
    pub fn cost(&self, usage: &Usage) -> u64 {
        let p = &self.price;
        // `input_tokens` counts the whole prompt: cache reads and cache writes included, each
        // priced at its own rate below.
        let cached = usage.cached_input_tokens.min(usage.input_tokens);
        let uncached = usage
            .input_tokens
            .saturating_sub(cached)
            .saturating_sub(usage.cache_write_tokens);
        let per_mtok: u128 = u128::from(uncached) * u128::from(p.input)
            + u128::from(cached) * u128::from(p.cached_input)
            + u128::from(usage.cache_write_tokens) * u128::from(p.cache_write)
            + u128::from(usage.output_tokens) * u128::from(p.output);
        let scaled = per_mtok * u128::from(10_000 + self.surcharge_bps);
        let micros = scaled.div_ceil(10_000u128 * 1_000_000u128);
        u64::try_from(micros).unwrap_or(u64::MAX)
    }
}

impl PriceTable {
    pub fn builtin() -> PriceTable {
        match PriceTable::parse(BUILTIN_PRICES.as_bytes()) {
            Ok(t) => t,
            // A test keeps the built-in table valid; an empty table prices nothing.
            Err(_) => PriceTable {
                version: "invalid-builtin".into(),
                prices: Vec::new(),
                surcharges: Vec::new(),
            },
        }
    }

    pub fn parse(bytes: &[u8]) -> Result<PriceTable, ConfigErrors> {
        let mut errs = ConfigErrors::default();
        let value: Value = match serde_json::from_slice(bytes) {
            Ok(v) => v,
            Err(e) => {
                errs.push("", format!("is not valid JSON: {e}"));
                return Err(errs);
            }
        };
        let table = validate(&value, &mut errs);
        match table {
            Some(t) if errs.is_empty() => Ok(t),
            _ => Err(errs),
        }
    }

    /// The price in force at `now_ms` for `provider`/`model` at `endpoint_host`.
    pub fn quote(
        &self,
        provider: &str,
        model: &str,
        endpoint_host: &str,
        now_ms: u64,
    ) -> Option<Quote> {
        let price = self
            .prices
            .iter()
            .filter(|p| p.provider == provider && p.model == model && p.effective_from_ms <= now_ms)
            .max_by_key(|p| p.effective_from_ms)?
            .clone();
        let surcharge_bps = self
            .surcharges
            .iter()
            .filter(|s| {
                s.provider == provider && s.endpoint_host.eq_ignore_ascii_case(endpoint_host)
            })
            .map(|s| s.basis_points)
            .sum();
        Some(Quote {
            price,
            surcharge_bps,
        })
    }
}

fn validate(value: &Value, errs: &mut ConfigErrors) -> Option<PriceTable> {
    let root = walk::object(value, "", PRICE_FIELDS, errs)?;
    let version = walk::required(root, "", "version", errs)
        .and_then(|v| walk::string(v, "version", errs))
        .map(str::to_string);
    let mut prices = Vec::new();
    if let Some(list) = walk::required(root, "", "prices", errs) {
        match list.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(p) = price(item, &format!("prices[{i}]"), errs) {
                        prices.push(p);
                    }
                }
            }
            None => errs.push("prices", "must be an array"),
        }
    }
    for (i, a) in prices.iter().enumerate() {
        if prices.iter().take(i).any(|b| {
            b.provider == a.provider
                && b.model == a.model
                && b.effective_from_ms == a.effective_from_ms
        }) {
            errs.push(
                format!("prices[{i}]"),
                "duplicates an earlier entry's provider, model and effective_from",
            );
        }
    }
    let mut surcharges = Vec::new();
    if let Some(list) = root.get("surcharges") {
        match list.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    let path = format!("surcharges[{i}]");
                    let Some(map) = walk::object(item, &path, SURCHARGE_FIELDS, errs) else {
                        continue;
                    };
                    let text = |name: &str, errs: &mut ConfigErrors| {
                        walk::required(map, &path, name, errs)
                            .and_then(|v| walk::string(v, &walk::field_path(&path, name), errs))
                            .map(str::to_string)
                    };
                    let provider = text("provider", errs);
                    let host = text("endpoint_host", errs);
                    let bps = walk::required(map, &path, "basis_points", errs).and_then(|v| {
                        walk::integer(
                            v,
                            &walk::field_path(&path, "basis_points"),
                            0,
                            100_000,
                            errs,
                        )
                    });
                    if let (Some(provider), Some(endpoint_host), Some(basis_points)) =
                        (provider, host, bps)
                    {
                        surcharges.push(Surcharge {
                            provider,
                            endpoint_host,
                            basis_points,
                        });
                    }
                }
            }
            None => errs.push("surcharges", "must be an array"),
        }
    }
    Some(PriceTable {
        version: version?,
        prices,
        surcharges,
    })
}

fn price(item: &Value, path: &str, errs: &mut ConfigErrors) -> Option<ModelPrice> {
    let map = walk::object(item, path, PRICE_ENTRY_FIELDS, errs)?;
    let text = |name: &str, errs: &mut ConfigErrors| {
        walk::required(map, path, name, errs)
            .and_then(|v| walk::string(v, &walk::field_path(path, name), errs))
            .map(str::to_string)
    };
    let money = |name: &str, required: bool, errs: &mut ConfigErrors| match map.get(name) {
        Some(v) => walk::integer(v, &walk::field_path(path, name), 0, 1_000_000_000_000, errs),
        None if required => {
            errs.push(walk::field_path(path, name), "is required");
            None
        }
        None => Some(0),
    };
    let provider = text("provider", errs);
    let model = text("model", errs);
    let effective = text("effective_from", errs).and_then(|s| {
        let parsed = parse_instant(&s);
        if parsed.is_none() {
            errs.push(
                walk::field_path(path, "effective_from"),
                "must be an RFC 3339 time or a YYYY-MM-DD date",
            );
        }
        parsed
    });
    let input = money("input_per_mtok_usd_micros", true, errs);
    let output = money("output_per_mtok_usd_micros", true, errs);
    let cached_input = money("cached_input_per_mtok_usd_micros", false, errs);
    let cache_write = money("cache_write_per_mtok_usd_micros", false, errs);
    let max_output_tokens = walk::required(map, path, "max_output_tokens", errs).and_then(|v| {
        walk::integer(
            v,
            &walk::field_path(path, "max_output_tokens"),
            1,
            10_000_000,
            errs,
        )
    });
    Some(ModelPrice {
        provider: provider?,
        model: model?,
        effective_from_ms: effective?,
        input: input?,
        output: output?,
        cached_input: cached_input?,
        cache_write: cache_write?,
        max_output_tokens: max_output_tokens?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input: u64, cached: u64, output: u64) -> Usage {
        Usage {
            input_tokens: input,
            output_tokens: output,
            cached_input_tokens: cached,
            cache_write_tokens: 0,
        }
    }

    #[test]
    fn the_builtin_table_is_valid() {
        let t = PriceTable::parse(BUILTIN_PRICES.as_bytes()).expect("valid built-in table");
        assert!(t
            .quote("openai", "gpt-4o-mini", "api.openai.com", u64::MAX)
            .is_some());
    }

    #[test]
    fn costs_follow_the_published_per_million_prices() {
        // gpt-4o-mini: $0.15 / $0.60 per 1M input / output tokens, cached input $0.075.
        let q = PriceTable::builtin()
            .quote("openai", "gpt-4o-mini", "api.openai.com", u64::MAX)
            .expect("priced");
        // 1M uncached input tokens cost exactly $0.15 = 150_000 micro-USD.
        assert_eq!(q.cost(&usage(1_000_000, 0, 0)), 150_000);
        assert_eq!(q.cost(&usage(0, 0, 1_000_000)), 600_000);
        assert_eq!(q.cost(&usage(1_000_000, 1_000_000, 0)), 75_000);
        // 1 token costs 0.15 micro-USD: rounded up to 1, never down to 0.
        assert_eq!(q.cost(&usage(1, 0, 0)), 1);
        assert_eq!(q.cost(&usage(0, 0, 0)), 0);
    }

    #[test]
    fn regional_endpoints_carry_their_surcharge() {
        let t = PriceTable::builtin();
        let eu = t
            .quote("openai", "gpt-4o-mini", "eu.api.openai.com", u64::MAX)
            .expect("priced");
        assert_eq!(eu.surcharge_bps, 1000);
        // $0.15 + 10% = $0.165 per 1M input tokens.
        assert_eq!(eu.cost(&usage(1_000_000, 0, 0)), 165_000);
    }

    #[test]
    fn the_entry_in_force_is_the_latest_effective_one() {
        let table = PriceTable::parse(
            br#"{"version":"t1","prices":[
              {"provider":"openai","model":"m","effective_from":"2025-01-01","input_per_mtok_usd_micros":1000000,"output_per_mtok_usd_micros":0,"max_output_tokens":10},
              {"provider":"openai","model":"m","effective_from":"2026-01-01","input_per_mtok_usd_micros":2000000,"output_per_mtok_usd_micros":0,"max_output_tokens":10}]}"#,
        )
        .expect("valid");
        let at = |d: &str| {
            table
                .quote("openai", "m", "h", parse_instant(d).expect("date"))
                .map(|q| q.price.input)
        };
        assert_eq!(at("2024-12-31"), None);
        assert_eq!(at("2025-06-01"), Some(1_000_000));
        assert_eq!(at("2026-01-01"), Some(2_000_000));
    }

    #[test]
    fn errors_name_their_paths() {
        let errs = PriceTable::parse(
            br#"{"prices":[{"provider":"openai","model":"m","effective_from":"soon","input_per_mtok_usd_micros":-1,"output_per_mtok_usd_micros":1.5,"max_output_tokens":10,"currency":"eur"}]}"#,
        )
        .expect_err("invalid");
        let paths = errs.paths();
        for p in [
            "version",
            "prices[0].effective_from",
            "prices[0].input_per_mtok_usd_micros",
            "prices[0].output_per_mtok_usd_micros",
            "prices[0].currency",
        ] {
            assert!(paths.contains(&p), "missing {p}: {errs}");
        }
    }
}
