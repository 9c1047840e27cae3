//! MODEL.md's reference cases (float64 outputs of an independent implementation, copied
//! from ../shared/spec/fixtures): the f64 reference must agree to ~1e-10, the GPU to 1e-4.

mod common;
use common::*;
use mflow::gpu_flow::GpuFlow;
use mflow::model::{Flow, FlowConfig};
use mflow::reference::flow as rf;
use serde_json::Value;

struct Case {
    name: &'static str,
    json: Value,
    flow: Flow,
}

fn flat(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(a) => a.iter().flat_map(flat).collect(),
        Value::Number(n) => vec![n.as_f64().unwrap()],
        other => panic!("unexpected fixture value {other}"),
    }
}

fn load(name: &'static str, text: &str) -> Case {
    let json: Value = serde_json::from_str(text).unwrap();
    let u = |k: &str| json[k].as_u64().unwrap() as usize;
    let config =
        FlowConfig { d: u("D"), b: u("B"), blocks: u("L"), depth: u("depth"), hidden: u("H"), seed: 0, conv: None };
    let mut flow = Flow::new(config).unwrap();
    let arch: Vec<(String, Option<usize>)> = json["arch"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_u64().map(|x| x as usize)))
        .collect();
    let ours: Vec<(String, Option<usize>)> = flow.arch().into_iter().map(|(k, i)| (k.to_string(), i)).collect();
    assert_eq!(ours, arch, "{name}: layer sequence differs from the fixture's");
    for (key, val) in json["params"].as_object().unwrap() {
        let vals = flat(val);
        if let Some(i) = key.strip_prefix("perm") {
            let perm: Vec<u32> = vals.iter().map(|&x| x as u32).collect();
            flow.set_perm(i.parse().unwrap(), &perm).unwrap();
        } else {
            let f: Vec<f32> = vals.iter().map(|&x| x as f32).collect();
            flow.set_tensor(key, &f).unwrap();
        }
    }
    flow.actnorm_initialized = true;
    Case { name, json, flow }
}

fn cases() -> Vec<Case> {
    vec![
        load("D2_B0", include_str!("fixtures/flow_D2_B0_H8_depth2_L2.json")),
        load("D2_B2", include_str!("fixtures/flow_D2_B2_H16_depth2_L4.json")),
        load("D5_B2", include_str!("fixtures/flow_D5_B2_H16_depth2_L3.json")),
    ]
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs() / (1.0 + y.abs())).fold(0.0, f64::max)
}

#[test]
fn reference_matches_fixtures() {
    for c in cases() {
        // Parameters went through f32 in `Flow`, so compare with a tolerance that allows it.
        let p = c.flow.params_f64();
        let y = flat(&c.json["y"]);
        let n = y.len() / c.flow.config.q();
        let (u, ld) = rf::forward(&c.flow, &p, &y, n);
        let lp = rf::log_prob(&c.flow, &p, &y, n);
        assert!(max_diff(&u, &flat(&c.json["u"])) < 1e-5, "{}: u", c.name);
        assert!(max_diff(&ld, &flat(&c.json["logdet"])) < 1e-5, "{}: logdet", c.name);
        assert!(max_diff(&lp, &flat(&c.json["log_pT"])) < 1e-5, "{}: log_pT", c.name);
        let lat = flat(&c.json["latent_in"]);
        let inv = rf::inverse(&c.flow, &p, &lat, lat.len() / c.flow.config.q());
        assert!(max_diff(&inv, &flat(&c.json["inverse_of_latent_in"])) < 1e-5, "{}: inverse", c.name);
        if c.flow.config.b > 0 {
            let s = c.json["marginal_S"].as_u64().unwrap() as usize;
            let x = flat(&c.json["marginal_x"]);
            let eps = flat(&c.json["marginal_eps"]);
            let rows = x.len() / c.flow.config.d;
            let ll = mflow::reference::marginal::marginal_log_likelihood(&c.flow, &p, &x, &eps, rows, s);
            assert!(max_diff(&ll, &flat(&c.json["marginal_ll"])) < 1e-5, "{}: marginal", c.name);
        }
    }
}

#[test]
fn gpu_matches_fixtures() {
    let gpu = gpu();
    for c in cases() {
        let q = c.flow.config.q();
        let y = flat(&c.json["y"]);
        let n = y.len() / q;
        let g = GpuFlow::new(gpu, &c.flow, n);
        let yf: Vec<f32> = y.iter().map(|&v| v as f32).collect();
        let out = g.forward(gpu, &yf);
        assert_close(&format!("{}: u", c.name), &out.u, &flat(&c.json["u"]), 1e-4, 1e-4);
        assert_close(&format!("{}: log_pT", c.name), &out.logp, &flat(&c.json["log_pT"]), 1e-4, 1e-4);
        let lat = flat(&c.json["latent_in"]);
        assert_eq!(lat.len(), n * q, "{}: latent_in has as many rows as y", c.name);
        let latf: Vec<f32> = lat.iter().map(|&v| v as f32).collect();
        let inv = g.inverse(gpu, &latf);
        assert_close(&format!("{}: inverse", c.name), &inv, &flat(&c.json["inverse_of_latent_in"]), 1e-4, 1e-4);
    }
}
