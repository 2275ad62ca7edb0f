"""The online list scheduler: each NKI call becomes one instruction, placed as soon as it is traced.

Every engine (Tensor, Vector, Scalar, GpSimd) and every DMA engine runs its own instruction stream; engines run
concurrently and wait on each other through semaphores (data dependencies, plus a sync latency across engines).
The neuronx compiler schedules each engine's stream within the dependencies, not in program order: an
instruction goes into the earliest gap of its engine's timeline at or after its operands are ready (list
scheduling in program order with backfilling, bounded by a window of recent busy intervals per engine).

    start = earliest gap >= deps ready (+ sync if from another engine)
    busy  = cycles / f_engine;  done = start + busy + pipe latency
"""

from __future__ import annotations

import bisect

from ..config import TrainiumConfig

TENSOR, VECTOR, SCALAR, GPSIMD, DMA = "tensor", "vector", "scalar", "gpsimd", "dma"
ENGINES = (TENSOR, VECTOR, SCALAR, GPSIMD)
_PORT_USERS = {VECTOR: ("sbuf", "psum"), GPSIMD: ("sbuf",), SCALAR: ("psum",)}
# Busy intervals kept per engine, DMA engine and shared port; older ones become a floor. For compute engines this
# is the compiler's scheduling window (assumption: an instruction moves ahead of at most ~64 earlier ones).
_WINDOW = 64
_MAX_ACCESSES = 48  # per allocation; older entries are merged (conservatively) to bound the work per instruction


class Access:
    """Dependency state of one allocation: recent writes and reads as (box, time, engine)."""

    __slots__ = ("writes", "reads", "last", "floor", "prev", "first", "lastidx")

    def __init__(self) -> None:
        self.first = -1  # index of the first and last instruction touching it (liveness, for spilling)
        self.lastidx = -1
        self.writes: list[tuple] = []
        self.reads: list[tuple] = []
        self.last = 0.0  # latest time anything touched it (for the buffer rotated into its slot)
        self.floor = -1.0  # earliest time the first write may start (multi-buffer WAR), resolved lazily
        self.prev: Access | None = None


def _overlap(a: tuple, b: tuple) -> bool:
    for (alo, ahi), (blo, bhi) in zip(a, b, strict=False):
        if alo >= bhi or blo >= ahi:
            return False
    return True


def _covers(a: tuple, b: tuple) -> bool:
    for (alo, ahi), (blo, bhi) in zip(a, b, strict=False):
        if blo < alo or bhi > ahi:
            return False
    return True


def _merge(entries: list[tuple]) -> list[tuple]:
    # Keep the newest half; fold the rest into one entry spanning all of them (conservative: may add false deps).
    keep = len(entries) // 2
    old, new = entries[:-keep], entries[-keep:]
    box = tuple((min(e[0][d][0] for e in old), max(e[0][d][1] for e in old)) for d in range(len(old[0][0])))
    t = max(e[1] for e in old)
    return [(box, t, old[-1][2])] + new


class Timeline:
    def __init__(self, cfg: TrainiumConfig) -> None:
        self.cfg = cfg
        self.freq = {TENSOR: cfg.f_tensor, VECTOR: cfg.f_vector, SCALAR: cfg.f_scalar, GPSIMD: cfg.f_gpsimd}
        self.pipe = {
            TENSOR: cfg.pipe_tensor / cfg.f_tensor,
            VECTOR: cfg.pipe_vector / cfg.f_vector,
            SCALAR: cfg.pipe_scalar / cfg.f_scalar,
            GPSIMD: cfg.pipe_gpsimd / cfg.f_gpsimd,
        }
        self.free = dict.fromkeys(ENGINES, 0.0)  # end of each engine's last busy interval
        self.lanes = {e: [None, [], [], 0.0] for e in ENGINES}  # busy intervals, as the DMA groups
        self.busy = dict.fromkeys(ENGINES, 0.0)
        self.count = dict.fromkeys((*ENGINES, DMA), 0)
        # DMA engines in groups with identical histories: [engine ids, busy starts, busy ends, floor]
        self.dma_groups: list[list] = [[list(range(cfg.dma_engines)), [], [], 0.0]]
        self.ports = {"sbuf": [None, [], [], 0.0], "psum": [None, [], [], 0.0]}  # shared access ports
        self.dma_busy = 0.0
        self.dma_rr = 0
        self.end = 0.0
        self.c = dict.fromkeys(
            (
                "hbm_read_bytes",
                "hbm_write_bytes",
                "sbuf_read_bytes",
                "sbuf_write_bytes",
                "psum_read_bytes",
                "psum_write_bytes",
                "spill_save_bytes",
                "spill_reload_bytes",
                "matmul_flops",
                "transpose_flops",
            ),
            0,
        )
        self.last_stationary = None
        self.n = 0  # instructions placed so far

    # -- dependencies -------------------------------------------------------------------------------------------
    def _ready(self, engine: str, reads, writes) -> float:
        """Earliest start allowed by RAW, WAR and WAW hazards. reads/writes: [(Access, box, buffer)]."""
        sync = self.cfg.sync_ns
        t = 0.0
        for acc, box, _ in reads:
            for wbox, wt, we in acc.writes:
                if wt > t - sync and _overlap(box, wbox):
                    t = max(t, wt + (sync if we != engine else 0.0))
        for acc, box, buf in writes:
            if acc.prev is not None:  # first write into a rotated physical buffer waits for its previous tenant
                acc.floor = acc.prev.last
                acc.prev = None
            if acc.floor > 0:
                t = max(t, acc.floor + sync)
            for rbox, rt, re in acc.reads:
                if rt > t - sync and _overlap(box, rbox):
                    t = max(t, rt + (sync if re != engine else 0.0))
            if buf != "hbm":  # write-after-write ordering only matters on chip
                for wbox, wt, we in acc.writes:
                    if wt > t - sync and _overlap(box, wbox):
                        t = max(t, wt + (sync if we != engine else 0.0))
        return t

    def _record(self, reads, writes, engine: str, t_read: float, t_write: float) -> None:
        self.n += 1
        n = self.n
        for acc, box, _ in writes:
            if acc.first < 0:
                acc.first = n
            acc.lastidx = n
            if acc.writes:
                acc.writes = [e for e in acc.writes if not _covers(box, e[0])]
            if acc.reads:
                acc.reads = [e for e in acc.reads if not _covers(box, e[0])]
            acc.writes.append((box, t_write, engine))
            if len(acc.writes) > _MAX_ACCESSES:
                acc.writes = _merge(acc.writes)
            if t_write > acc.last:
                acc.last = t_write
        for acc, box, _ in reads:
            if acc.first < 0:
                acc.first = n
            acc.lastidx = n
            acc.reads.append((box, t_read, engine))
            if len(acc.reads) > _MAX_ACCESSES:
                acc.reads = _merge(acc.reads)
            if t_read > acc.last:
                acc.last = t_read

    # -- compute engines ----------------------------------------------------------------------------------------
    def _lanes(self, engine: str, busy: float, reads, writes) -> list:
        lanes = [self.lanes[engine]]
        if busy > 0 and engine in _PORT_USERS:
            # VectorE and GpSimdE cannot access SBUF at the same time, nor VectorE and ScalarE PSUM (ARCH)
            bufs = {a[2] for a in reads} | {a[2] for a in writes}
            lanes += [self.ports[b] for b in _PORT_USERS[engine] if b in bufs]
        return lanes

    def compute(self, engine: str, cycles: float, reads, writes) -> float:
        busy = cycles / self.freq[engine]
        lanes = self._lanes(engine, busy, reads, writes)
        start = self._find(lanes, self._ready(engine, reads, writes), busy)
        for lane in lanes:
            _, i = self._earliest(lane, start, busy)
            self._insert(lane, i, start, busy)
        if start + busy > self.free[engine]:
            self.free[engine] = start + busy
        self.busy[engine] += busy
        self.count[engine] += 1
        done = start + busy + self.pipe[engine]
        self._record(reads, writes, engine, start + busy, done)
        if done > self.end:
            self.end = done
        return done

    # -- DMA ------------------------------------------------------------------------------------------------------
    def dma(self, rows: int, chunks_per_row: int, chunk_bytes: float, reads, writes, hbm_bytes: int) -> float:
        """A transfer of `rows` partition rows, each `chunks_per_row` contiguous chunks of `chunk_bytes`.

        Rows are dealt to DMA engines in groups of 8 partitions (ARCH); each group costs
        Σ (chunk + B0) / BW on its engine; completion adds the fixed DMA latency.
        """
        cfg = self.cfg
        ready = self._ready(DMA, reads, writes)
        per = cfg.dma_partitions_per_engine
        n = cfg.dma_engines
        groups = max(1, -(-rows // per))
        per_row = chunks_per_row * (chunk_bytes + cfg.dma_chunk_overhead_bytes) / cfg.dma_bw_bytes_per_ns
        uniform = groups == n and rows == n * per  # the common full-width transfer: every engine alike
        if uniform:
            dur = None
            d_all = per * per_row
        else:
            dur = {}
            for g in range(groups):
                e = (self.dma_rr + g) % n
                dur[e] = dur.get(e, 0.0) + min(per, rows - g * per) * per_row
        self.dma_rr = (self.dma_rr + groups) % n
        end = 0.0
        first = None
        if not uniform:
            for grp in list(self.dma_groups):
                ids = grp[0]
                d0 = dur.get(ids[0])
                if len(ids) > 1 and any(dur.get(e) != d0 for e in ids):
                    self._split(grp, dur)
        for grp in self.dma_groups:
            d = d_all if uniform else dur.get(grp[0][0])
            if not d:
                continue
            s = self._place(grp, ready, d)
            if first is None or s < first:
                first = s
            if s + d > end:
                end = s + d
            self.dma_busy += d * len(grp[0])
        if hbm_bytes:  # no transfer beats the HBM ceiling of the whole core
            end = max(end, first + hbm_bytes / cfg.hbm_bw_bytes_per_ns)
        self.count[DMA] += 1
        done = end + cfg.dma_latency_ns
        self._record(reads, writes, DMA, end, done)
        if done > self.end:
            self.end = done
        return done

    def _split(self, grp: list, dur: dict) -> None:
        """Engines with identical histories share one interval list; split a group whose engines now diverge."""
        by: dict = {}
        for e in grp[0]:
            by.setdefault(dur.get(e), []).append(e)
        parts = list(by.values())
        grp[0] = parts[0]
        for ids in parts[1:]:
            self.dma_groups.append([ids, list(grp[1]), list(grp[2]), grp[3]])

    @staticmethod
    def _earliest(grp: list, t: float, dur: float) -> tuple[float, int]:
        """Earliest start >= t with `dur` free in a busy-interval list, and where it goes."""
        _, starts, ends, floor = grp
        t = max(t, floor)
        i = bisect.bisect_right(ends, t)  # intervals are disjoint and sorted: ends are sorted too
        n = len(starts)
        while i < n and starts[i] - t < dur:
            t = max(t, ends[i])
            i += 1
        return t, i

    @staticmethod
    def _insert(grp: list, i: int, t: float, dur: float) -> None:
        if dur <= 0:
            return
        starts, ends = grp[1], grp[2]
        starts.insert(i, t)
        ends.insert(i, t + dur)
        if len(starts) > _WINDOW:
            del starts[0]
            grp[3] = max(grp[3], ends.pop(0))

    def _place(self, grp: list, ready: float, dur: float) -> float:
        """Earliest start >= ready with `dur` free on a DMA engine (group). Each engine serves 16 queues
        round-robin (DMA1), so a transfer is not held behind an earlier-issued one still waiting for its data."""
        t, i = self._earliest(grp, ready, dur)
        self._insert(grp, i, t, dur)
        return t

    def _find(self, lanes: list, t: float, dur: float) -> float:
        """Earliest start >= t with `dur` free on every lane (an engine and the shared ports it needs)."""
        while True:
            moved = False
            for p in lanes:
                t2, _ = self._earliest(p, t, dur)
                if t2 > t:
                    t, moved = t2, True
            if not moved:
                return t

    # -- results --------------------------------------------------------------------------------------------------
    def latency_us(self) -> float:
        return self.end / 1000.0 + self.cfg.launch_overhead_us

    def profile(self) -> dict:
        total_ns = self.latency_us() * 1000.0
        p: dict = {"latency_us": round(self.latency_us(), 4)}
        for e in ENGINES:
            p[f"{e}_busy_pct"] = round(100.0 * self.busy[e] / total_ns, 2)
        p["dma_busy_pct"] = round(100.0 * self.dma_busy / (self.cfg.dma_engines * total_ns), 2)
        p["instructions"] = dict(self.count)
        p.update(self.c)
        p["mfu"] = round(self.c["matmul_flops"] / (total_ns * 1e-9) / self.cfg.peak_flops, 4)
        hbm = self.c["hbm_read_bytes"] + self.c["hbm_write_bytes"]
        p["mbu"] = round(hbm / total_ns / self.cfg.dma_peak_bytes_per_ns, 4)
        return p
