//! `ferry info`: topology and binding plan.

use ferry::parts::launcher::{self, Topology};

use super::CliError;

/// Prints the topology and the plan for `ranks` ranks on this node.
pub(crate) fn run(ranks: u32, json: bool) -> Result<(), CliError> {
    let topo = Topology::detect().map_err(|e| format!("cannot detect the topology: {e}"))?;
    let cpus = topo.cpu_count();
    let oversubscribed = ranks as usize > cpus;
    let plan = if oversubscribed {
        launcher::plan_oversubscribed(&topo, ranks)?
    } else {
        launcher::plan(&topo, ranks)?
    };
    let cuda = match ferry::gpu::probe::driver() {
        Ok(d) => format!(
            "CUDA driver {}.{}, {} device{}",
            d.version_major(),
            d.version_minor(),
            d.device_count,
            if d.device_count == 1 { "" } else { "s" }
        ),
        Err(e) => format!("no usable CUDA driver ({e}): GPU requests are infeasible"),
    };
    if json {
        let mut v = launcher::render_json(&topo, &plan);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("ranks_per_node".into(), ranks.into());
            obj.insert("oversubscribed".into(), oversubscribed.into());
            obj.insert("cuda".into(), cuda.into());
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        if oversubscribed {
            println!(
                "note: {ranks} ranks on {cpus} CPU{}: oversubscribed, ranks share CPUs round-robin",
                if cpus == 1 { "" } else { "s" }
            );
        }
        print!("{}", launcher::render_table(&topo, &plan));
        println!("cuda: {cuda}");
    }
    Ok(())
}
