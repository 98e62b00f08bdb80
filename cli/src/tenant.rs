//! `asc tenant check`: validates a tenant config, optionally against a region.

use std::process::ExitCode;

use asc_core::config::TenantConfig;
use clap::Args;

/// Validates a tenant config.
///
/// Prints every problem with its path and exits 1 if there are any. With --region, also checks
/// the residency and every model endpoint against that region's egress allowlist.
#[derive(Args)]
pub struct CheckArgs {
    /// The tenant config (JSON).
    #[arg(value_name = "FILE")]
    file: String,
    /// A built-in region (eu, us, local: regions/*.toml) to check the config against.
    #[arg(long, value_name = "ID")]
    region: Option<String>,
}

pub fn tenant_check(args: &CheckArgs) -> Result<ExitCode, String> {
    let file = &args.file;
    let bytes = std::fs::read(file).map_err(|e| format!("{file}: {e}"))?;
    let config = match TenantConfig::parse(&bytes) {
        Ok(c) => c,
        Err(errs) => {
            for e in &errs.0 {
                println!("{file}: {e}");
            }
            return Ok(ExitCode::from(1));
        }
    };
    let mut problems = 0;
    if let Some(region_id) = &args.region {
        let regions = asc_core::builtin_regions()?;
        let region = regions
            .get(region_id)
            .ok_or_else(|| format!("no region {region_id:?}"))?;
        if config.residency != region.id {
            println!(
                "{file}: residency: is {:?}, not {region_id:?}",
                config.residency
            );
            problems += 1;
        }
        for (name, target) in &config.models {
            if let Err(e) = region.check_egress(&target.url_for("chat/completions")) {
                println!("{file}: models[{name:?}].endpoint: {}", e.message);
                problems += 1;
            }
        }
    }
    if problems > 0 {
        return Ok(ExitCode::from(1));
    }
    println!(
        "{file}: ok (tenant {}, {} model(s))",
        config.tenant_id,
        config.models.len()
    );
    Ok(ExitCode::SUCCESS)
}
