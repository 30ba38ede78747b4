//! The simulated world one node sees: sensor values that drift like real
//! ones (mean-reverting random walks around daily curves) and the effect of
//! the node's actuators on them. automation-engine's pH/EC control is tested
//! against this, so a dose must move its value in the right direction and by
//! a predictable amount. Over 400 lines with its tests: bounds over two days,
//! each actuator's effect, and DONE's wait and details.

use std::time::Duration;

use proto::payloads::MetricType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Map, Value, json};

use crate::command::Action;
use crate::layout::{ChannelSpec, ChannelType, NodeKind};

/// The longest a `run_pump` keeps its DONE back; longer runs report DONE
/// after this, so a 10-minute run does not hold a test or a timeout hostage.
pub const MAX_DONE_WAIT: Duration = Duration::from_secs(10);

/// pH change per second of `run_pump` on `pump_acid` (down) or `pump_base` (up).
pub const PH_PER_PUMP_SECOND: f64 = 0.1;
/// pH change per millilitre of `dose`.
pub const PH_PER_ML: f64 = 0.02;
/// EC change (mS/cm) per second of `run_pump` on `pump_nutrients` (up) or
/// `pump_dilution` (down).
pub const EC_PER_PUMP_SECOND: f64 = 0.05;
/// EC change per millilitre of `dose`.
pub const EC_PER_ML: f64 = 0.01;

/// The pH a probe can report.
pub const PH_RANGE: (f64, f64) = (3.5, 9.0);
/// The EC a probe can report, mS/cm.
pub const EC_RANGE: (f64, f64) = (0.0, 5.0);

const PH_TARGET: f64 = 6.0;
const EC_TARGET: f64 = 1.6;
/// A full tank, cm; refilling starts below `TANK_LOW_CM`.
const TANK_FULL_CM: f64 = 40.0;
const TANK_LOW_CM: f64 = 10.0;
/// Irrigation pump flow, l/min.
const PUMP_FLOW: f64 = 12.0;
/// Bright sun on the light sensor, lux; grow lights at full power add `LAMP_LUX`.
const SUN_LUX: f64 = 40_000.0;
const LAMP_LUX: f64 = 20_000.0;
/// `set_relay` on the irrigation pump runs it until `stop`, at most this long.
const RELAY_RUN_SECS: f64 = 3_600.0;
/// Soil moisture, %, of a bed left alone and of one being irrigated.
const SOIL_DRY: f64 = 30.0;
const SOIL_WET: f64 = 45.0;
/// A longer gap between steps (a paused process) counts as this much.
const MAX_STEP_SECS: f64 = 60.0;

/// One node's surroundings.
#[derive(Debug)]
pub struct Physics {
    rng: StdRng,
    ph: f64,
    ec: f64,
    temperature: f64,
    humidity: f64,
    co2: f64,
    water_level: f64,
    refilling: bool,
    /// Seconds the irrigation pump still runs.
    pump_remaining: f64,
    flow: f64,
    /// Soil moisture of the bed, % (every soil probe of the node reads it).
    soil: f64,
    clouds: f64,
    lamp_on: bool,
    lamp_level: u8,
    light: f64,
}

/// A value relaxing towards `target` with time constant `tau` seconds, plus
/// noise of `sigma` per √s: an Ornstein–Uhlenbeck step.
fn relax(x: f64, target: f64, tau: f64, sigma: f64, dt: f64, noise: f64) -> f64 {
    x + (target - x) * (dt / tau).min(1.0) + sigma * dt.sqrt() * noise
}

fn daily_wave(hour: f64, peak_hour: f64) -> f64 {
    (std::f64::consts::TAU * (hour - peak_hour) / 24.0).cos()
}

impl Physics {
    /// A fresh world at typical values; `seed` makes the noise reproducible.
    pub fn new(seed: u64, hour: f64) -> Self {
        let mut p = Physics {
            rng: StdRng::seed_from_u64(seed),
            ph: PH_TARGET,
            ec: EC_TARGET,
            temperature: 22.0 + 4.0 * daily_wave(hour, 15.0),
            humidity: 65.0 - 10.0 * daily_wave(hour, 15.0),
            co2: 650.0 + 250.0 * daily_wave(hour, 3.0),
            water_level: 0.0,
            refilling: false,
            pump_remaining: 0.0,
            flow: 0.0,
            soil: SOIL_DRY,
            clouds: 0.85,
            lamp_on: false,
            lamp_level: 255,
            light: 0.0,
        };
        // Nodes start at different points of the tank cycle and of the noise.
        p.water_level = p.rng.random_range(TANK_LOW_CM + 5.0..TANK_FULL_CM);
        p.ph += p.rng.random_range(-0.1..0.1);
        p.ec += p.rng.random_range(-0.05..0.05);
        p.step(0.0, hour);
        p
    }

    /// Gaussian-like noise of unit variance (a scaled uniform is enough here).
    fn noise(&mut self) -> f64 {
        (self.rng.random::<f64>() - 0.5) * 12f64.sqrt()
    }

    /// Advances the world by `dt` seconds; `hour` is the time of day (0..24).
    pub fn step(&mut self, dt: f64, hour: f64) {
        let dt = dt.clamp(0.0, MAX_STEP_SECS);
        let n = [
            self.noise(),
            self.noise(),
            self.noise(),
            self.noise(),
            self.noise(),
            self.noise(),
            self.noise(),
            self.noise(),
        ];
        // pH and EC relax slowly (ten minutes), so a dose stays visible long
        // enough for a controller to see it; their spread stays near ±0.1.
        self.ph = relax(self.ph, PH_TARGET, 600.0, 0.006, dt, n[0]).clamp(PH_RANGE.0, PH_RANGE.1);
        self.ec = relax(self.ec, EC_TARGET, 600.0, 0.003, dt, n[1]).clamp(EC_RANGE.0, EC_RANGE.1);
        // Air: warmest at 15:00 (18–26 °C), most humid when coolest (55–75 %),
        // CO2 highest before dawn when plants do not take it up (400–900 ppm).
        let temp_target = 22.0 + 4.0 * daily_wave(hour, 15.0);
        self.temperature = relax(self.temperature, temp_target, 120.0, 0.02, dt, n[2]);
        let humidity_target = 65.0 - 10.0 * daily_wave(hour, 15.0);
        self.humidity =
            relax(self.humidity, humidity_target, 120.0, 0.1, dt, n[3]).clamp(0.0, 100.0);
        let co2_target = 650.0 + 250.0 * daily_wave(hour, 3.0);
        self.co2 = relax(self.co2, co2_target, 120.0, 2.0, dt, n[4]).max(0.0);
        // Tank: evaporation, faster while irrigating; refilled from empty-ish to full.
        self.pump_remaining = (self.pump_remaining - dt).max(0.0);
        let pumping = self.pump_remaining > 0.0;
        if self.refilling {
            self.water_level += 0.1 * dt;
            self.refilling = self.water_level < TANK_FULL_CM;
        } else {
            self.water_level -= if pumping { 0.05 } else { 0.002 } * dt;
            self.refilling = self.water_level < TANK_LOW_CM;
        }
        self.water_level = self.water_level.clamp(0.0, TANK_FULL_CM);
        self.flow = if pumping {
            (PUMP_FLOW + 0.3 * n[5]).max(0.0)
        } else {
            0.0
        };
        // Soil: wetted towards SOIL_WET while irrigating, drying back slowly.
        let soil_target = if pumping { SOIL_WET } else { SOIL_DRY };
        self.soil = relax(self.soil, soil_target, 900.0, 0.05, dt, n[7]).clamp(0.0, 100.0);
        // Light: the sun between 06:00 and 18:00 through passing clouds, plus lamps.
        self.clouds = relax(self.clouds, 0.85, 300.0, 0.01, dt, n[6]).clamp(0.3, 1.0);
        let sun = ((hour - 6.0) * std::f64::consts::PI / 12.0).sin().max(0.0);
        let lamp = if self.lamp_on {
            LAMP_LUX * f64::from(self.lamp_level) / 255.0
        } else {
            0.0
        };
        self.light = SUN_LUX * sun * self.clouds + lamp;
    }

    /// What the sensor for `metric` reads now, rounded as a probe reports it.
    pub fn reading(&self, metric: MetricType) -> f64 {
        let round = |x: f64, places: i32| {
            let f = 10f64.powi(places);
            (x * f).round() / f
        };
        match metric {
            MetricType::Ph => round(self.ph, 3),
            MetricType::Ec => round(self.ec, 3),
            MetricType::Temperature => round(self.temperature, 2),
            MetricType::Humidity => round(self.humidity, 1),
            MetricType::Co2 => round(self.co2, 0),
            MetricType::WaterLevel => round(self.water_level, 2),
            MetricType::FlowRate => round(self.flow, 2),
            MetricType::LightIntensity => round(self.light, 0),
            MetricType::SoilMoisture => round(self.soil, 1),
            _ => 0.0,
        }
    }

    /// Carries out `action` on `channel` of a node of `kind` (see
    /// [`Physics::apply`]) and says how the node reports it: how long DONE
    /// waits (a pump's run, at most [`MAX_DONE_WAIT`]) and DONE's details (a
    /// sensor's value when it is read or calibrated).
    pub fn perform(
        &mut self,
        kind: NodeKind,
        channel: &ChannelSpec,
        action: Action,
    ) -> (Duration, Option<Map<String, Value>>) {
        self.apply(kind, channel.channel, action);
        let wait = match action {
            Action::RunPump { duration_ms } => {
                Duration::from_millis(duration_ms).min(MAX_DONE_WAIT)
            }
            _ => Duration::ZERO,
        };
        let details = match (action, channel.channel_type, channel.metric_type) {
            (Action::ReadNow | Action::Calibrate, ChannelType::Sensor, Some(metric)) => Some(
                Map::from_iter([("value".to_owned(), json!(self.reading(metric)))]),
            ),
            _ => None,
        };
        (wait, details)
    }

    /// The effect of `action` on `channel` of a node of `kind`. Commands
    /// without a physical effect (ping, calibrate, ...) change nothing.
    pub fn apply(&mut self, kind: NodeKind, channel: &str, action: Action) {
        let amount = |per_second: f64, per_ml: f64| match action {
            Action::RunPump { duration_ms } => duration_ms as f64 / 1000.0 * per_second,
            Action::Dose { ml } => ml * per_ml,
            _ => 0.0,
        };
        match (kind, channel) {
            (NodeKind::Ph, "pump_acid") => self.ph -= amount(PH_PER_PUMP_SECOND, PH_PER_ML),
            (NodeKind::Ph, "pump_base") => self.ph += amount(PH_PER_PUMP_SECOND, PH_PER_ML),
            (NodeKind::Ec, "pump_nutrients") => self.ec += amount(EC_PER_PUMP_SECOND, EC_PER_ML),
            (NodeKind::Ec, "pump_dilution") => self.ec -= amount(EC_PER_PUMP_SECOND, EC_PER_ML),
            (NodeKind::Irrigation, "pump_irrigation") => match action {
                Action::RunPump { duration_ms } => {
                    self.pump_remaining = duration_ms as f64 / 1000.0
                }
                Action::SetRelay { on } => {
                    self.pump_remaining = if on { RELAY_RUN_SECS } else { 0.0 }
                }
                Action::Stop => self.pump_remaining = 0.0,
                _ => {}
            },
            (NodeKind::Light, "light") => match action {
                Action::SetRelay { on } => self.lamp_on = on,
                Action::SetPwm { value } => {
                    self.lamp_level = value;
                    self.lamp_on = value > 0;
                }
                Action::Stop => self.lamp_on = false,
                _ => {}
            },
            _ => {}
        }
        self.ph = self.ph.clamp(PH_RANGE.0, PH_RANGE.1);
        self.ec = self.ec.clamp(EC_RANGE.0, EC_RANGE.1);
        // Flow and lamp light show at once, not at the next telemetry tick.
        self.step(0.0, current_hour());
    }

    /// Whether the irrigation pump is running.
    pub fn pumping(&self) -> bool {
        self.pump_remaining > 0.0
    }
}

/// The time of day in UTC, in hours (0..24).
pub fn current_hour() -> f64 {
    use chrono::Timelike;
    let now = chrono::Utc::now();
    f64::from(now.num_seconds_from_midnight()) / 3600.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(duration_ms: u64) -> Action {
        Action::RunPump { duration_ms }
    }

    #[test]
    fn done_waits_for_a_pump_run_and_carries_a_read_value() {
        let mut p = Physics::new(7, 12.0);
        let channels = NodeKind::Ph.channels();
        let (sensor, pump) = (&channels[0], &channels[1]);
        let (wait, details) = p.perform(NodeKind::Ph, pump, run(2_000));
        assert_eq!((wait, details), (Duration::from_secs(2), None));
        let (wait, _) = p.perform(NodeKind::Ph, pump, run(600_000));
        assert_eq!(wait, MAX_DONE_WAIT);
        let (wait, details) = p.perform(NodeKind::Ph, sensor, Action::ReadNow);
        assert_eq!(wait, Duration::ZERO);
        let value = details.expect("a read carries its value")["value"]
            .as_f64()
            .unwrap();
        assert_eq!(value, p.reading(sensor.metric_type.unwrap()));
        assert_eq!(
            p.perform(NodeKind::Ph, pump, Action::Stop),
            (Duration::ZERO, None)
        );
    }

    #[test]
    fn values_stay_in_realistic_bounds_over_two_days() {
        let mut p = Physics::new(7, 0.0);
        for i in 0..(2 * 24 * 3600 / 5) {
            let hour = (f64::from(i) * 5.0 / 3600.0) % 24.0;
            p.step(5.0, hour);
            let ph = p.reading(MetricType::Ph);
            assert!((5.4..=6.6).contains(&ph), "pH {ph}");
            let ec = p.reading(MetricType::Ec);
            assert!((1.3..=1.9).contains(&ec), "EC {ec}");
            let t = p.reading(MetricType::Temperature);
            assert!((17.0..=27.0).contains(&t), "temperature {t} at {hour}");
            let h = p.reading(MetricType::Humidity);
            assert!((52.0..=78.0).contains(&h), "humidity {h}");
            let c = p.reading(MetricType::Co2);
            assert!((350.0..=950.0).contains(&c), "CO2 {c}");
            let w = p.reading(MetricType::WaterLevel);
            assert!((0.0..=TANK_FULL_CM).contains(&w), "water {w}");
            assert_eq!(p.reading(MetricType::FlowRate), 0.0);
            let l = p.reading(MetricType::LightIntensity);
            assert!((0.0..=SUN_LUX).contains(&l), "light {l}");
            if !(6.0..=18.0).contains(&hour) {
                assert_eq!(l, 0.0, "dark at {hour}");
            }
        }
    }

    #[test]
    fn water_level_falls_and_refills() {
        let mut p = Physics::new(1, 12.0);
        let mut seen_refill = false;
        let mut previous = p.reading(MetricType::WaterLevel);
        for _ in 0..(48 * 3600 / 10) {
            p.step(10.0, 12.0);
            let now = p.reading(MetricType::WaterLevel);
            seen_refill |= now > previous + 0.5;
            previous = now;
        }
        assert!(seen_refill);
    }

    #[test]
    fn every_dose_moves_its_value_the_right_way() {
        let cases = [
            (NodeKind::Ph, "pump_acid", MetricType::Ph, -1.0),
            (NodeKind::Ph, "pump_base", MetricType::Ph, 1.0),
            (NodeKind::Ec, "pump_nutrients", MetricType::Ec, 1.0),
            (NodeKind::Ec, "pump_dilution", MetricType::Ec, -1.0),
        ];
        for (kind, channel, metric, sign) in cases {
            for action in [run(2_000), Action::Dose { ml: 10.0 }] {
                let mut p = Physics::new(3, 12.0);
                let before = p.reading(metric);
                p.apply(kind, channel, action);
                let delta = p.reading(metric) - before;
                assert!(delta * sign > 0.09, "{channel} {action:?}: {delta}");
            }
        }
        let mut p = Physics::new(3, 12.0);
        let before = p.reading(MetricType::Ph);
        p.apply(NodeKind::Ph, "pump_acid", run(1_000));
        let delta = before - p.reading(MetricType::Ph);
        assert!((delta - PH_PER_PUMP_SECOND).abs() < 0.002, "{delta}");
    }

    #[test]
    fn doses_are_bounded() {
        let mut p = Physics::new(3, 12.0);
        p.apply(NodeKind::Ph, "pump_acid", run(600_000));
        assert_eq!(p.reading(MetricType::Ph), PH_RANGE.0);
        p.apply(NodeKind::Ph, "pump_base", run(600_000));
        assert_eq!(p.reading(MetricType::Ph), PH_RANGE.1);
        p.apply(NodeKind::Ec, "pump_dilution", run(600_000));
        assert_eq!(p.reading(MetricType::Ec), EC_RANGE.0);
        p.apply(NodeKind::Ec, "pump_nutrients", run(600_000));
        assert_eq!(p.reading(MetricType::Ec), EC_RANGE.1);
    }

    #[test]
    fn irrigation_flows_while_the_pump_runs() {
        let mut p = Physics::new(3, 12.0);
        p.apply(NodeKind::Irrigation, "pump_irrigation", run(3_000));
        assert!(p.pumping());
        p.step(1.0, 12.0);
        assert!(p.reading(MetricType::FlowRate) > 10.0);
        p.step(2.5, 12.0);
        assert_eq!(p.reading(MetricType::FlowRate), 0.0);
        p.apply(
            NodeKind::Irrigation,
            "pump_irrigation",
            Action::SetRelay { on: true },
        );
        p.step(1.0, 12.0);
        assert!(p.pumping());
        p.apply(NodeKind::Irrigation, "pump_irrigation", Action::Stop);
        assert!(!p.pumping());
    }

    #[test]
    fn irrigation_wets_the_soil_and_it_dries_back() {
        let mut p = Physics::new(5, 12.0);
        let dry = p.reading(MetricType::SoilMoisture);
        assert!((25.0..35.0).contains(&dry), "{dry}");
        p.apply(NodeKind::Irrigation, "pump_irrigation", run(1_800_000));
        for _ in 0..30 {
            p.step(60.0, 12.0);
        }
        let wet = p.reading(MetricType::SoilMoisture);
        assert!(wet > dry + 5.0, "{dry} -> {wet}");
        p.apply(NodeKind::Irrigation, "pump_irrigation", Action::Stop);
        for _ in 0..60 {
            p.step(60.0, 12.0);
        }
        assert!(p.reading(MetricType::SoilMoisture) < wet - 5.0);
    }

    #[test]
    fn lamps_light_the_night() {
        let mut p = Physics::new(3, 0.0);
        p.step(1.0, 0.0);
        assert_eq!(p.reading(MetricType::LightIntensity), 0.0);
        p.apply(NodeKind::Light, "light", Action::SetPwm { value: 255 });
        p.step(1.0, 0.0);
        assert_eq!(p.reading(MetricType::LightIntensity), LAMP_LUX);
        p.apply(NodeKind::Light, "light", Action::Stop);
        p.step(1.0, 0.0);
        assert_eq!(p.reading(MetricType::LightIntensity), 0.0);
    }
}
