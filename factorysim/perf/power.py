"""Power, energy and cost: what the factory draws from the grid and what its tokens cost.

A chip draws by what it is doing (figures per chip in the catalog, power.toml):

    GEMM-bound   GEMMs and fused attention            gemm_w = TDP, or the power cap
    memory-bound norms, casts, the optimizer update   memory_w
    waiting      exposed communication, the pipeline bubble, a straggler's wait    waiting_w
    idle         the job is down, hung, saving a checkpoint; a spare              idle_w
    off          in repair                                                         0

One step splits into those phases: the step model's compute time divides by the share of a layer's chip-alone
time that GEMMs and attention take (the rest is memory-bound), the optimizer update is memory-bound, and every
second the step charges to communication, the bubble or stragglers is waiting. Stages with fewer layers than the
busiest compute for their share of the step and wait the rest. Every chip of the job is assumed in step with the
others: the job's phases are synchronous, which is what makes site power swing.

A server adds its host (CPUs, memory, storage, fans, scale-up switches, power-supply losses) while its chips
train and host_idle_w otherwise. The fabric adds its switches, the optics of every populated switch port and every
chip's NIC, counted on the built topology (link edits included) and drawn whatever the job does. The facility
multiplies the IT load by its PUE.

Cost: electricity at the facility's price, plus chips, servers and switches amortised over the years given.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..scenario.catalog import ChipSpec, catalog
from ..scenario.errors import Problem
from ..scenario.models import Scenario
from ..scenario.parallel import resolve_layout
from ..topology.index import FabricIndex
from .step import StepEstimate, layer_compute

HOURS_PER_YEAR = 8766.0  # 365.25 days
J_PER_KWH = 3.6e6


class PowerUnknown(ValueError):
    """The scenario's chip gives no TDP, so nothing about its power can be said."""


# ------------------------------------------------------------------ the figures


@dataclass(frozen=True)
class ChipDraw:
    """What one chip draws in each phase, W (a power cap already applied)."""

    gemm_w: float
    memory_w: float
    waiting_w: float
    idle_w: float
    tdp_w: float
    cap_w: float | None = None

    def capped(self, cap_w: float | None) -> ChipDraw:
        if cap_w is None:
            return self
        return ChipDraw(
            min(self.gemm_w, cap_w), min(self.memory_w, cap_w), min(self.waiting_w, cap_w), min(self.idle_w, cap_w),
            self.tdp_w, cap_w,
        )  # fmt: skip


@dataclass(frozen=True)
class FabricInventory:
    """The fabric's parts on the built topology: switches, populated switch ports, chip NIC ports."""

    leaves: int
    spines: int
    cores: int
    switch_ports: int
    nic_ports: int

    @property
    def switches(self) -> int:
        return self.leaves + self.spines + self.cores


@dataclass(frozen=True)
class PowerModel:
    """Every figure the power and cost model uses for one scenario, and where each came from."""

    chip: ChipDraw
    chips_per_server: int
    host_w: float  # per server while its chips train
    host_idle_w: float  # per server otherwise
    switch_w: float
    port_w: float
    nic_w: float
    pue: float
    usd_per_kwh: float
    carbon_g_per_kwh: float
    chip_usd: float | None
    server_usd: float | None  # per server, beyond its accelerators
    switch_usd: float | None
    amortization_years: float
    origin: dict[str, str] = field(default_factory=dict)  # figure -> where it came from

    def server_w(self, chip_w: float) -> float:
        """One training server: its chips at `chip_w` each and its host."""
        return self.chips_per_server * chip_w + self.host_w

    @property
    def idle_server_w(self) -> float:
        return self.chips_per_server * self.chip.idle_w + self.host_idle_w

    @property
    def assumptions(self) -> list[str]:
        """The figures in use that nobody published (labelled assumptions in the catalog)."""
        return [k for k, v in self.origin.items() if "assumption" in v]


def _pick(name: str, *options: tuple[float | None, str]) -> tuple[float, str]:
    for value, origin in options:
        if value is not None:
            return float(value), origin
    raise PowerUnknown(name)


def power_model(s: Scenario) -> PowerModel:
    """The scenario's power and cost figures: [power], [facility] and [cost] over the catalog's.

    Raises PowerUnknown when the chip gives no TDP (an inline chip without tdp_w)."""
    cat = catalog()
    d, fac = cat.power.chip_defaults, cat.power.facility
    chip: ChipSpec = s.cluster.raw_chip_spec
    name = s.cluster.chip_name
    if chip.tdp_w is None:
        raise PowerUnknown(f"{name} has no tdp_w: set cluster.chip.tdp_w to see power, energy and cost")
    tdp = chip.tdp_w
    inline = not isinstance(s.cluster.chip, str)
    own = "cluster.chip" if inline else f"{name} catalog"
    unpublished = not inline and chip.power_source.startswith("none")
    tdp_origin = own + (" (assumption: not published)" if unpublished else "")
    p = s.power
    share = "[chip_defaults] share of TDP (assumption)"
    idle, o_idle = _pick("idle_w", (p.idle_w, "[power]"), (chip.idle_w, own), (d.idle_share * tdp, share))
    mem, o_mem = _pick(
        "memory_bound_w", (p.memory_bound_w, "[power]"), (chip.memory_bound_w, own),
        (d.memory_bound_share * tdp, share),
    )  # fmt: skip
    wait, o_wait = _pick("waiting_w", (p.waiting_w, "[power]"), (chip.waiting_w, own), (d.waiting_share * tdp, share))
    cpn = s.cluster.chips_per_node
    host_origin = own + (" (derived)" if chip.host_w is not None else "")
    host, o_host = _pick(
        "host_w", (p.host_w, "[power]"), (None if chip.host_w is None else chip.host_w * cpn, host_origin),
        (d.host_share * tdp * cpn, share),
    )  # fmt: skip
    host_idle, o_host_idle = _pick(
        "host_idle_w", (p.host_idle_w, "[power]"), (d.host_idle_share * host, "[chip_defaults] share of host_w (assumption)")
    )  # fmt: skip
    fabric = s.cluster.fabric.spec
    fname = s.cluster.fabric.technology if isinstance(s.cluster.fabric.technology, str) else "cluster.fabric.technology"
    f_origin = f"{fname} catalog" + (" (assumption)" if "all [A]" in fabric.power_assumptions else "")
    if fabric.switch_w is None or fabric.port_w is None or fabric.nic_w is None:
        raise PowerUnknown(f"{fname} gives no switch_w, port_w or nic_w: set them to see power, energy and cost")
    f = s.facility
    pue, o_pue = _pick("pue", (f.pue, "[facility]"), (fac.pue, "power.toml [facility]"))
    price, o_price = _pick(
        "electricity", (f.electricity_usd_per_kwh, "[facility]"), (fac.electricity_usd_per_kwh, "power.toml [facility]")
    )  # fmt: skip
    carbon, o_carbon = _pick(
        "carbon", (f.carbon_g_per_kwh, "[facility]"), (fac.carbon_g_per_kwh, "power.toml [facility]")
    )  # fmt: skip
    c = s.cost
    chip_usd = c.chip_usd if c.chip_usd is not None else chip.price_usd
    server_usd = c.server_usd
    o_server = "[cost]"
    if server_usd is None and chip_usd is not None:
        server_usd, o_server = fac.server_cost_share * chip_usd * cpn, "power.toml server_cost_share x chip price"
    switch_usd = c.switch_usd if c.switch_usd is not None else fabric.switch_usd
    years, o_years = _pick(
        "years", (c.amortization_years, "[cost]"), (fac.amortization_years, "power.toml [facility]")
    )  # fmt: skip
    origin = {
        "tdp_w": tdp_origin, "idle_w": o_idle, "memory_bound_w": o_mem, "waiting_w": o_wait, "host_w": o_host,
        "host_idle_w": o_host_idle, "fabric": f_origin, "pue": o_pue, "electricity": o_price, "carbon": o_carbon,
        "chip_usd": "[cost]" if c.chip_usd is not None else (own if chip_usd is not None else "not priced"),
        "server_usd": o_server if server_usd is not None else "not priced",
        "switch_usd": ("[cost]" if c.switch_usd is not None else f_origin) if switch_usd is not None else "not priced",
        "amortization_years": o_years,
    }  # fmt: skip
    draw = ChipDraw(tdp, mem, wait, idle, tdp).capped(s.cluster.power_cap_w)
    return PowerModel(
        draw, cpn, host, host_idle, fabric.switch_w, fabric.port_w, fabric.nic_w, pue, price, carbon,
        chip_usd, server_usd, switch_usd, years, origin,
    )  # fmt: skip


def fabric_inventory(index: FabricIndex) -> FabricInventory:
    """Switches and ports of the built fabric. Links are counted at the fabric's port speed (an edit that adds a
    link adds its ports; one that removes it takes them away); NIC ports are the chips with a fabric link."""
    plan = index.plan
    port_bw = float(index.up_bw[0]) if len(index.up_bw) else 0.0
    nic_ports = int(np.count_nonzero(index.nic_base > 0))
    links = 0
    if port_bw > 0:
        links = round(float(index.up_bw.sum()) / port_bw) + round(float(index.core_bw.sum()) / port_bw)
    return FabricInventory(
        leaves=plan.leaves,
        spines=len(index.spine_health),
        cores=len(index.core_health),
        switch_ports=nic_ports + 2 * links,
        nic_ports=nic_ports,
    )


def fabric_w(pm: PowerModel, inv: FabricInventory) -> float:
    """The fabric's draw, W: switch chassis, switch-side optics, chip NICs with theirs."""
    return inv.switches * pm.switch_w + inv.switch_ports * pm.port_w + inv.nic_ports * pm.nic_w


# ------------------------------------------------------------------ one step


@dataclass(frozen=True)
class StepPhases:
    """Seconds of one step a chip of the job spends in each phase (averaged over pipeline stages)."""

    gemm_s: float
    memory_s: float
    waiting_s: float

    @property
    def total(self) -> float:
        return self.gemm_s + self.memory_s + self.waiting_s


def gemm_share(s: Scenario) -> float:
    """The share of a layer's chip-alone compute time that GEMMs and attention take (the rest is memory-bound)."""
    layout = resolve_layout(s)
    lc = layer_compute(s, layout, s.cluster.chip_spec, s.workload.model_spec(), native=False)
    return (lc.linear + lc.attention) / lc.total if lc.total > 0 else 1.0


def step_phases(e: StepEstimate, share: float) -> StepPhases:
    """A step's phases from its breakdown: compute split by the GEMM `share`, the optimizer memory-bound, the
    rest waiting. Stages with fewer layers than the busiest compute that much less and wait the difference."""
    b = e.breakdown
    layers = e.layout.stage_layers
    busy = 1.0
    if layers and layers[e.critical_stage] > 0:
        busy = sum(layers) / len(layers) / layers[e.critical_stage]
    compute = b.compute_s * busy
    gemm = compute * share
    memory = compute * (1.0 - share) + b.optimizer_s
    return StepPhases(gemm, memory, max(0.0, e.step_time_s - gemm - memory))


def chip_step_energy(draw: ChipDraw, phases: StepPhases) -> float:
    """Joules one chip of the job draws over one step."""
    return phases.gemm_s * draw.gemm_w + phases.memory_s * draw.memory_w + phases.waiting_s * draw.waiting_w


@dataclass(frozen=True)
class StepPower:
    """Power, energy and cost of the scenario's cluster training at the step's duty cycle, fault-free."""

    model: PowerModel
    phases: StepPhases
    inventory: FabricInventory
    step_time_s: float
    tokens_per_step: float
    model_flops_per_step: float
    job_servers: int
    spare_servers: int
    chip_w: float  # one chip of the job, mean over the step
    fabric_w: float  # IT
    capex_usd: float | None  # chips, servers and switches
    capex_parts: dict[str, float | None]

    # ---- power, W
    @property
    def job_it_w(self) -> float:
        return self.job_servers * self.model.server_w(self.chip_w)

    @property
    def spares_it_w(self) -> float:
        return self.spare_servers * self.model.idle_server_w

    @property
    def it_w(self) -> float:
        """The whole cluster at the meter before cooling: the job, idle spares, the fabric."""
        return self.job_it_w + self.spares_it_w + self.fabric_w

    @property
    def site_w(self) -> float:
        return self.it_w * self.model.pue

    @property
    def peak_site_w(self) -> float:
        """The facility's worst case (`peak_site_w`)."""
        return peak_site_w(self.model, self.job_servers, self.spare_servers, self.inventory)

    @property
    def idle_site_w(self) -> float:
        """The job down: every chip and host idle, the fabric on."""
        servers = self.job_servers + self.spare_servers
        return (servers * self.model.idle_server_w + self.fabric_w) * self.model.pue

    @property
    def stop_swing_w(self) -> float:
        """The step in site power when the whole job stops at once (a checkpoint pause, a hang, a restart)."""
        return self.site_w - self.idle_site_w

    @property
    def phase_swing_w(self) -> float:
        """Inside a step: the job's chips from their GEMM draw to their waiting draw (the compute/communication
        square wave of synchronous training)."""
        chips = self.job_servers * self.model.chips_per_server
        return chips * (self.model.chip.gemm_w - self.model.chip.waiting_w) * self.model.pue

    # ---- energy
    @property
    def energy_per_step_j(self) -> float:
        """The whole site over one step."""
        return self.site_w * self.step_time_s

    @property
    def tokens_per_kwh(self) -> float:
        e = self.energy_per_step_j
        return self.tokens_per_step / (e / J_PER_KWH) if e > 0 and math.isfinite(e) else 0.0

    @property
    def joules_per_flop(self) -> float:
        """Site joules per model FLOP."""
        return self.energy_per_step_j / self.model_flops_per_step if self.model_flops_per_step > 0 else math.inf

    # ---- cost
    @property
    def electricity_usd_per_hour(self) -> float:
        return self.site_w / 1000 * self.model.usd_per_kwh

    @property
    def capex_usd_per_hour(self) -> float | None:
        if self.capex_usd is None:
            return None
        return self.capex_usd / (self.model.amortization_years * HOURS_PER_YEAR)

    @property
    def usd_per_hour(self) -> float:
        """Electricity plus amortised hardware (what is priced)."""
        return self.electricity_usd_per_hour + (self.capex_usd_per_hour or 0.0)

    @property
    def tokens_per_hour(self) -> float:
        return self.tokens_per_step / self.step_time_s * 3600 if self.step_time_s > 0 else 0.0

    @property
    def usd_per_million_tokens(self) -> float:
        t = self.tokens_per_hour
        return self.usd_per_hour / t * 1e6 if t > 0 else math.inf

    @property
    def co2_kg_per_hour(self) -> float:
        return self.site_w / 1000 * self.model.carbon_g_per_kwh / 1000

    def to_tokens(self, tokens: float) -> dict[str, float]:
        """Hours, energy, cost and emissions to train `tokens` at this rate with no faults."""
        hours = tokens / self.tokens_per_hour if self.tokens_per_hour > 0 else math.inf
        mwh = self.site_w * hours / 1e6
        return {
            "hours": hours,
            "energy_mwh": mwh,
            "usd": self.usd_per_hour * hours,
            "electricity_usd": self.electricity_usd_per_hour * hours,
            "co2_t": mwh * self.model.carbon_g_per_kwh / 1000,
        }

    def as_dict(self, target_tokens: float | None = None) -> dict:
        def num(x: float | None) -> float | None:
            return x if x is not None and math.isfinite(x) else None

        m = self.model
        out = {
            "chip_w": self.chip_w,
            "chip_draw_w": {"gemm": m.chip.gemm_w, "memory_bound": m.chip.memory_w, "waiting": m.chip.waiting_w,
                            "idle": m.chip.idle_w, "tdp": m.chip.tdp_w, "cap": m.chip.cap_w},
            "phases_s": {"gemm": self.phases.gemm_s, "memory_bound": self.phases.memory_s,
                         "waiting": self.phases.waiting_s},
            "host_w_per_server": m.host_w,
            "fabric_w": self.fabric_w,
            "fabric": {"switches": self.inventory.switches, "switch_ports": self.inventory.switch_ports,
                       "nic_ports": self.inventory.nic_ports},
            "it_w": self.it_w,
            "pue": m.pue,
            "site_w": self.site_w,
            "peak_site_w": self.peak_site_w,
            "idle_site_w": self.idle_site_w,
            "stop_swing_w": self.stop_swing_w,
            "phase_swing_w": self.phase_swing_w,
            "energy_per_step_j": num(self.energy_per_step_j),
            "tokens_per_kwh": self.tokens_per_kwh,
            "joules_per_model_flop": num(self.joules_per_flop),
            "usd_per_kwh": m.usd_per_kwh,
            "electricity_usd_per_hour": self.electricity_usd_per_hour,
            "capex_usd": self.capex_usd,
            "capex_usd_per_hour": self.capex_usd_per_hour,
            "usd_per_hour": self.usd_per_hour,
            "usd_per_million_tokens": num(self.usd_per_million_tokens),
            "carbon_g_per_kwh": m.carbon_g_per_kwh,
            "co2_kg_per_hour": self.co2_kg_per_hour,
            "origin": dict(m.origin),
        }  # fmt: skip
        if target_tokens:
            out["to_target"] = {k: num(v) for k, v in self.to_tokens(target_tokens).items()}
        return out


def capex(pm: PowerModel, servers: int, inv: FabricInventory) -> tuple[float | None, dict[str, float | None]]:
    """Hardware bought: chips, servers beyond their chips, switches (None where a price is missing)."""
    parts: dict[str, float | None] = {
        "chips": None if pm.chip_usd is None else pm.chip_usd * servers * pm.chips_per_server,
        "servers": None if pm.server_usd is None else pm.server_usd * servers,
        "switches": None if pm.switch_usd is None else pm.switch_usd * inv.switches,
    }
    priced = [v for v in parts.values() if v is not None]
    return (sum(priced) if priced else None), parts


def step_power(s: Scenario, e: StepEstimate, index: FabricIndex, share: float | None = None) -> StepPower:
    """Power, energy and cost of a scenario training at its step estimate `e` on the cluster `index`.

    `share` (the GEMM share of compute, `gemm_share(s)`) may be passed when known. Raises PowerUnknown when the
    chip or the fabric gives no power figures."""
    pm = power_model(s)
    phases = step_phases(e, gemm_share(s) if share is None else share)
    chip_w = chip_step_energy(pm.chip, phases) / e.step_time_s if e.step_time_s > 0 else pm.chip.idle_w
    if not math.isfinite(e.step_time_s):
        chip_w = pm.chip.idle_w
    inv = fabric_inventory(index)
    c = s.cluster
    total, parts = capex(pm, c.nodes, inv)
    tokens_step = float(e.tokens_per_step)
    return StepPower(
        model=pm,
        phases=phases,
        inventory=inv,
        step_time_s=e.step_time_s,
        tokens_per_step=tokens_step,
        model_flops_per_step=tokens_step * e.model_flops_per_token,
        job_servers=c.job_nodes,
        spare_servers=c.spare_nodes,
        chip_w=chip_w,
        fabric_w=fabric_w(pm, inv),
        capex_usd=total,
        capex_parts=parts,
    )


class CostMeter:
    """Cost per token of many layouts of one cluster (a layout search): the power model, the fabric and the
    hardware are counted once; each layout adds its step's duty cycle."""

    def __init__(self, s: Scenario, index: FabricIndex) -> None:
        self.model = power_model(s)
        inv = fabric_inventory(index)
        c = s.cluster
        self.job_servers, self.spare_servers = c.job_nodes, c.spare_nodes
        self.fabric_w = fabric_w(self.model, inv)
        total, _ = capex(self.model, c.nodes, inv)
        self.capex_usd_per_hour = (total or 0.0) / (self.model.amortization_years * HOURS_PER_YEAR)

    def usd_per_million_tokens(self, s: Scenario, e: StepEstimate) -> float:
        """Electricity and amortised hardware per million tokens, fault-free (as `StepPower`)."""
        if e.tokens_per_s <= 0:
            return math.inf
        pm = self.model
        chip_w = chip_step_energy(pm.chip, step_phases(e, gemm_share(s))) / e.step_time_s
        it = self.job_servers * pm.server_w(chip_w) + self.spare_servers * pm.idle_server_w + self.fabric_w
        per_hour = it * pm.pue / 1000 * pm.usd_per_kwh + self.capex_usd_per_hour
        return per_hour / (e.tokens_per_s * 3600) * 1e6


# ------------------------------------------------------------------ checks


def peak_site_w(pm: PowerModel, job_servers: int, spare_servers: int, inv: FabricInventory) -> float:
    """The most the cluster can draw from the facility: every chip of the job at its GEMM draw at once with its
    host busy, the spares idle (a spare trains only in place of a failed server, which draws nothing), the fabric,
    times PUE."""
    return (job_servers * pm.server_w(pm.chip.gemm_w) + spare_servers * pm.idle_server_w + fabric_w(pm, inv)) * pm.pue


def power_problems(s: Scenario, index: FabricIndex | None = None, facility: bool = True) -> list[Problem]:
    """A power cap within the range the power/performance curve covers, and (with `facility`) the cluster's peak
    within the facility's limit. `index`: the cluster as built (default: built here from the scenario)."""
    cap = s.cluster.power_cap_w
    limit = s.facility.power_mw if facility else None
    if cap is None and limit is None:
        return []
    try:
        pm = power_model(s)
    except PowerUnknown as exc:
        key = "cluster.power_cap_w" if cap is not None else "facility.power_mw"
        return [Problem(key, f"{exc}; the check needs it")]
    problems: list[Problem] = []
    if cap is not None:
        uncapped = power_model(s.model_copy(update={"cluster": s.cluster.model_copy(update={"power_cap_w": None})}))
        floor = uncapped.chip.memory_w
        if cap < floor:
            problems.append(
                Problem(
                    "cluster.power_cap_w",
                    f"{cap:g} W is below {s.cluster.chip_name}'s memory-bound draw of {floor:g} W "
                    f"({uncapped.origin['memory_bound_w']}); the power/performance curve covers caps from there to "
                    f"the TDP: allowed {floor:g} to {pm.chip.tdp_w:g}",
                )
            )
    if limit is not None:
        if index is None:
            from ..topology.edits import index_for

            index = index_for(s.cluster, s.topology.edits)
        peak_mw = peak_site_w(pm, s.cluster.job_nodes, s.cluster.spare_nodes, fabric_inventory(index)) / 1e6
        if peak_mw > limit:
            chips = s.cluster.job_chips
            problems.append(
                Problem(
                    "facility.power_mw",
                    f"the cluster's peak is {peak_mw:.2f} MW at the meter ({chips:,} chips of the job at "
                    f"{pm.chip.gemm_w:g} W with their hosts, idle spares and the fabric, PUE {pm.pue:g}), above the facility's {limit:g} MW: use "
                    f"fewer servers (cluster.nodes), cap the chips (cluster.power_cap_w) or raise facility.power_mw",
                )
            )
    return problems


# ------------------------------------------------------------------ model cards


def card_energy_mwh(chip: ChipSpec, gpu_hours: float, pue: float = 1.0) -> float:
    """A model card's convention: GPU-hours x the chip's TDP x PUE, MWh."""
    if chip.tdp_w is None:
        raise PowerUnknown("the chip has no tdp_w")
    return gpu_hours * chip.tdp_w * pue / 1e6


def emissions_t(energy_mwh: float, carbon_g_per_kwh: float) -> float:
    """Tonnes of CO2 for `energy_mwh` at a grid intensity in g/kWh."""
    return energy_mwh * carbon_g_per_kwh / 1000
