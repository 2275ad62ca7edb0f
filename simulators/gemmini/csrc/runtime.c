/* Gemmini simulator runtime: functional semantics (Spike order) plus a cycle-approximate timing model.
 *
 * Functional side: every command executes immediately, in program order; the reservation station orders
 * overlapping local ranges, so this equals the hardware result. Timing side: each command is placed
 * online into three in-order queues (LD/EX/ST) with RS capacities, per-row dependencies across queues,
 * a DMA read and write port (window, bandwidth, latency) and the mesh pipeline. research/gemmini.md §3.3.
 */
#define _GNU_SOURCE
#include <fenv.h>
#include <link.h>
#include <stdarg.h>
#include <unistd.h>

#include "gemmini.h"

typedef int64_t cyc;
enum { QLD, QEX, QST };
enum { SRC_CPU, SRC_FSM, SRC_LIB };

/* ---------------- state ----------------
 * All runtime state lives in its own section, which candidate DMA may not touch. */
#define GS __attribute__((section("gsim_state")))
extern char __start_gsim_state[], __stop_gsim_state[];
static GS elem_t *spad;
static GS acc_t *acc;
static GS struct { size_t stride; float scale; int shrunk, block_stride; } ldc[3];
static GS struct { int df, act, a_t, b_t; uint32_t shift; float acc_scale; size_t a_stride, c_stride; } exc;
static GS struct { size_t stride; int act; float scale; } stc;
static GS struct { int valid; uint32_t b, c; long b_cols, b_rows, c_cols, c_rows; } pre;
#if GSIM_FP32
typedef float op_t;
#else
typedef int16_t op_t; /* int8 operands widened so the k reduction maps onto multiply-add instructions */
#endif
static GS op_t Wt[DIM][DIM]; /* WS weights held in the array, transposed: Wt[j][k] */
#if !GSIM_FP32 && DIM % 8 == 0 && defined(__x86_64__)
#include <immintrin.h>
#define GSIM_SIMD 1
/* The same weights for the AVX2 path: Wp[k/2][j] packs (W[k][j], W[k+1][j]) as two int16, so one
 * multiply-add instruction does two k steps for eight columns. */
static GS int32_t Wp[DIM / 2][DIM] __attribute__((aligned(32)));
#endif
static GS acc_t pe[DIM][DIM]; /* OS accumulators */
static GS uint32_t os_c; static GS long os_c_cols, os_c_rows; static GS int os_pending;
static GS int loop_ws_count;
static GS cyc fsm_floor; /* the loop being issued was configured by the CPU at this cycle (loops.inc) */
/* As on hardware, the scratchpad and accumulator hold garbage until written: each reset fills them with a
 * pseudo-random pattern that differs per seed, and a per-row bitmask of written columns catches the first
 * read of a column nothing wrote (reported with a wrong output, which such a read almost always causes). */
static GS uint64_t *wmask[2];
static GS uint64_t n_resets;
/* what read it (stats key uninit_what; the host names it) */
enum { RD_MVOUT, RD_A, RD_D, RD_B, RD_ACC_C, RD_ACC_MVIN, RD_OS_D };
static GS struct { uint64_t count, instr; int line, mem, what; uint32_t row; } uninit;

/* candidate DRAM: data+bss and the stack; the shadow holds the index+1 of the last mvout per 4 B */
extern char __etext, _end; /* linker symbols: end of code, end of bss */
static GS uintptr_t data_lo, data_hi, stack_lo, stack_hi, lib_lo, lib_hi; /* lib: the candidate's solution.so */
static GS uint32_t *shadow_data, *shadow_stack, *shadow_lib;
/* Shadow entries hold epoch + command index; each reset moves the epoch past every index stored so far, so
 * a seed never sees the mvouts of the seed before it (and nothing needs clearing). */
static GS uint32_t epoch;
static GS uint64_t last_fence_instr, mvouts_since_fence;

/* instruction bookkeeping */
static GS uint64_t n_instr;
static GS int cur_line;
static GS int src_kind = SRC_CPU;
/* The candidate's CPU work: instructions and basic blocks it executed, counted by additions that gsim-count
 * (count.c) puts into its object at each block. In the candidate's process these point at its counters; in
 * the accelerator process at the stamps of the command being replayed (channel.inc). */
static GS uint64_t no_count[2];
static GS volatile uint64_t *cpu_ic = &no_count[0], *cpu_bc = &no_count[1];
static GS uint64_t bb_seen, insns_seen, cpu_frac;
/* the two processes (channel.inc) */
static GS int is_child, replaying;
static GS char zero_row[(GSIM_MAX_BLOCK_LEN + GSIM_MAX_BLOCK_LEN_ACC) * DIM * 8]; /* what a replayed mvin reads: a row at most */
static GS pid_t child_pid;
static void child_error(const char *text, size_t n);

/* ---------------- timing state ---------------- */
#define RING 64
static GS cyc t_cpu, t_fsm, last_alloc, all_done, last_ack;
static GS cyc alloc_ring[RING];
static GS cyc rs_ring[3][RING];
static GS uint64_t rs_n[3];
static GS cyc unit_free[3];
static GS cyc *wr_t[3][2], *rd_t[3][2]; /* [queue][0 spad / 1 acc][row] */
static GS cyc rd_win[RING], wr_win[RING];
static GS uint64_t rd_n, wr_n;
static GS cyc rd_port, wr_port;
static GS cyc mvin_done_ring[RING]; static GS uint64_t mvin_n;
static GS cyc mesh_ring[RING]; static GS uint64_t mesh_n;
static GS cyc mesh_fe[RING], ex_fe[RING]; /* when each matmul in mesh_ring / EX RS entry finished feeding */
static GS cyc mesh_drain;
static GS cyc last_st_complete;
/* EX lookahead: the last compute, so the next preload's weight feed can overlap it */
static GS struct { int valid; cyc start, end, n; uint32_t a, a_row; int a_acc; } lastx; /* n: cycles before write stalls */
static GS struct { cyc feed_end; } lastp; /* when the last preload's weights are in */
static GS uint8_t *touch[2];
/* Scratchpad banks are single-ported and the write wins ([G] sp_singleported, ScratchpadBank: "when the
 * scratchpad is single-ported, the writes take precedence"): every row a mvin writes into a bank takes one cycle
 * from the EX unit's reads of that bank. Both orders are modelled: an EX read interval placed over earlier
 * writes is stretched by them (wr_log), and a write landing inside an already placed interval moves the EX
 * unit's later work one cycle on (ex_slide). */
#define EXR 32
static GS struct { cyc s, e; } ex_rd[GSIM_SP_BANKS][EXR];
static GS uint32_t ex_rd_n[GSIM_SP_BANKS];
static GS cyc bank_wr_free[GSIM_SP_BANKS];
/* The accumulator's banks have a read and a write port, and the ExecuteController's result writes come first
 * ([G] Scratchpad.scala: "Order of precedence during writes is ExecuteController, and then mvin_scale, ... and
 * then zero_writer"); an accumulating write also takes the read port for its read-modify-write
 * ([G] AccumulatorMem: "Make sure we aren't accumulating, which would take over both ports"). The EX unit's
 * result rows per accumulator bank: n rows from cycle s, one every f cycles (acc: accumulating). A mvin into
 * the accumulator writes a row in a cycle with no result write of that bank; a mvout reads a row in a cycle
 * with no accumulating write. */
#define AXR 32
static GS struct { cyc s, fe; int f, n, acc; } ex_wr[GSIM_ACC_BANKS][AXR]; /* fe: the compute's feed end */
static GS uint32_t ex_wr_n[GSIM_ACC_BANKS];
#define WLOG 2048 /* recent row-write cycles per bank, increasing */
static GS cyc wr_log[GSIM_SP_BANKS][WLOG];
static GS uint64_t wr_log_n[GSIM_SP_BANKS];

static GS struct {
  uint64_t n_mvin, n_mvout, n_preload, n_compute, n_config, n_fence, n_loop_ws, n_loop_conv, n_flush;
  uint64_t dma_rd_bytes, dma_wr_bytes, dma_rd_reqs, dma_wr_reqs;
  uint64_t busy[3], dep_stall[3], rs_full_q[3], bank_wr_stall, acc_rd_stall, rs_full_stall, cpu_stall, fence_stall, window_stall, bank_conflict;
  uint64_t fsm_instr, macs_issued, bb, insns;
  uint64_t sp_rd_rows, sp_wr_rows, acc_rd_rows, acc_wr_rows; /* SRAM rows moved, for the counters */
} ctr;

#include "guard.inc"

/* ---------------- errors ---------------- */
__attribute__((noreturn, format(printf, 2, 3))) static void fail(const char *type, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (is_child) { /* the accelerator process reports it (channel.inc) */
    char rec[1200];
    int k = snprintf(rec, sizeof rec, "%s\n%llu\n%d\n%s\n", type, (unsigned long long)n_instr, cur_line, msg);
    child_error(rec, k < 0 ? 0 : (size_t)k < sizeof rec ? (size_t)k : sizeof rec - 1);
  }
  if (chan_fd >= 0) {
    char rec[1200];
    int k = snprintf(rec, sizeof rec, "%s\n%llu\n%d\n%s\n", type, (unsigned long long)n_instr, cur_line, msg);
    chan_commit("GSIM-ER\n", rec, k < 0 ? 0 : (size_t)k < sizeof rec ? (size_t)k : sizeof rec - 1);
  }
  FILE *f = fopen("gsim_error.txt", "w");
  if (f) {
    fprintf(f, "%s\n%llu\n%d\n%s\n", type, (unsigned long long)n_instr, cur_line, msg);
    fclose(f);
  }
  _exit(3);
}

void gsim_unsupported(const char *what, int line) {
  cur_line = line;
  fail("constraint_error", "%s is not supported by this simulator", what);
}

static GS void *gsim_entry;
void gsim_set_entry(void *entry) { gsim_entry = entry; }

/* ---------------- helpers ---------------- */
static inline int garbage(uint32_t a) { return a == 0xFFFFFFFFu || (a & 0xE0004000u) == 0xE0004000u; }
static inline int is_acc(uint32_t a) { return (a >> 31) & 1; }
static inline uint32_t row_of(uint32_t a) { return a & 0x1FFFFFFFu; }
static inline elem_t *sp_at(uint32_t row) { return spad + (size_t)row * DIM; }
static inline acc_t *acc_at(uint32_t row) { return acc + (size_t)row * DIM; }
static inline uint64_t col_mask(long c0, long n) {
  uint64_t m = n >= 64 ? ~0ull : ((1ull << n) - 1);
  return m << c0;
}
/* columns [c0, c0+n) of row `row` of memory m (0 spad, 1 acc) are now defined */
static inline void mark_written(int m, uint32_t row, long c0, long n) {
  if (n > 0) wmask[m][row] |= col_mask(c0, n);
}
static void note_uninit(int m, uint32_t row, int what) {
  if (!uninit.count++) { uninit.instr = n_instr; uninit.line = cur_line; uninit.mem = m; uninit.row = row; uninit.what = what; }
}
static inline void check_read(int m, uint32_t row, long c0, long n, int what) {
  uint64_t want = col_mask(c0, n);
  if (n > 0 && (wmask[m][row] & want) != want) note_uninit(m, row, what);
}

static void check_local(uint32_t a, uint32_t row_hi_excl, const char *what) {
  uint32_t row = row_of(a);
  uint32_t limit = is_acc(a) ? GSIM_ACC_ROWS : GSIM_SP_ROWS;
  if (row_hi_excl > limit || row >= limit)
    fail("address_error", "%s: %s rows %u..%u out of range (%u rows; address 0x%08x)", what,
         is_acc(a) ? "accumulator" : "scratchpad", row, row_hi_excl ? row_hi_excl - 1 : 0, limit, a);
}

static void check_dims(const char *what, long cols, long rows, long max_cols, long max_rows) {
  if (rows < 0 || cols < 0 || rows > max_rows || cols > max_cols)
    fail("constraint_error", "%s: %ld rows x %ld cols exceeds the limit of %ld rows x %ld cols", what, rows,
         cols, max_rows, max_cols);
}

#if GSIM_FP32
static inline elem_t to_elem_scaled(acc_t x, float s) { return (elem_t)(x * s); }
static inline elem_t mvin_scale(elem_t x, float s) { return (elem_t)(x * s); }
static inline acc_t wrap_add(acc_t a, acc_t b) { return a + b; }
static inline elem_t sat_elem(acc_t x) { return (elem_t)x; }
static inline acc_t rrs(acc_t x, uint32_t s) { (void)s; return x; }
#else
static inline elem_t sat8(int64_t x) { return (elem_t)(x > 127 ? 127 : x < -128 ? -128 : x); }
static inline elem_t sat_elem(acc_t x) { return sat8(x); }
static inline elem_t to_elem_scaled(acc_t x, float s) {
  if (s == 1.0f) return sat8(x);
  float y = nearbyintf((float)x * s); /* int32->float, multiply and round, all round-to-nearest-even */
  if (y > 127.0f) return 127;
  if (y < -128.0f) return -128;
  return (elem_t)y;
}
static inline elem_t mvin_scale(elem_t x, float s) { return s == 1.0f ? x : to_elem_scaled(x, s); }
static inline acc_t wrap_add(acc_t a, acc_t b) { return (acc_t)((uint32_t)a + (uint32_t)b); }
static inline acc_t rrs(acc_t x, uint32_t s) { /* rounding right shift, half to even */
  if (s == 0) return x;
  if (s > 31) s = 31;
  int64_t v = x, q = v >> s, r = v - (q << s), half = (int64_t)1 << (s - 1);
  if (r > half || (r == half && (q & 1))) q++;
  return (acc_t)q;
}
#endif
static inline elem_t relu_e(elem_t x, int act) { return (act == RELU && x < 0) ? 0 : x; }

/* DRAM ranges the candidate may touch: its own data/bss (kernel arrays live there) and its stack. */
static uint32_t *shadow_for(uintptr_t lo, uintptr_t hi, uintptr_t *base) {
  uintptr_t s0 = (uintptr_t)__start_gsim_state, s1 = (uintptr_t)__stop_gsim_state;
  if (lo >= data_lo && hi <= data_hi && (hi <= s0 || lo >= s1)) { *base = data_lo; return shadow_data; }
  if (lo >= stack_lo && hi <= stack_hi) { *base = stack_lo; return shadow_stack; }
  if (lo >= lib_lo && hi <= lib_hi && shadow_lib) { *base = lib_lo; return shadow_lib; }
  return NULL;
}

static uint32_t *check_dram(uintptr_t addr, size_t rows, size_t stride, size_t row_bytes, const char *what,
                            uintptr_t *base) {
  uintptr_t hi = addr + (rows ? (rows - 1) * stride : 0) + row_bytes;
  uint32_t *sh = shadow_for(addr, hi, base);
  if (!sh || hi < addr)
    fail("address_error",
         "%s: DRAM range 0x%lx..0x%lx is outside the kernel's arrays and the program's own static/stack memory",
         what, (unsigned long)addr, (unsigned long)hi);
  return sh;
}

/* ---------------- timing ---------------- */
/* Run by hand with GSIM_TRACE=file, the harness writes one line per timed command: its index, kind, RS
 * allocation, start and end cycles and the CPU clock (for studying the model; never set in the sandbox). */
static GS FILE *dbg_trace;
#define TRACE(kind, a, s, e) \
  do { \
    if (dbg_trace) \
      fprintf(dbg_trace, "%llu %s %lld %lld %lld %lld\n", (unsigned long long)n_instr, kind, (long long)(a), \
              (long long)(s), (long long)(e), (long long)t_cpu); \
  } while (0)
/* Charge the candidate's instructions since the last sync; `credit` of them (the x86 call sequence of the
 * intrinsic being issued, which the real core does not execute) are not charged. */
static void sync_cpu_credit(uint64_t credit) {
  uint64_t bb = *cpu_bc, insns = *cpu_ic, n = insns - insns_seen;
  ctr.bb += bb - bb_seen;
  ctr.insns += n;
  /* in 1/10000 cycles, carrying the fraction: x86 -> RISC-V instructions -> Rocket cycles */
  cpu_frac += (n > credit ? n - credit : 0) * GSIM_RISCV_INSTRUCTIONS_PER_100_X86 * GSIM_CPU_CENTICYCLES_PER_INSTRUCTION;
  t_cpu += (cyc)(cpu_frac / 10000);
  cpu_frac %= 10000;
  bb_seen = bb;
  insns_seen = insns;
}
static void sync_cpu(void) { sync_cpu_credit(0); }

uint64_t gsim_read_cycles(void) {
  sync_cpu();
  return (uint64_t)t_cpu;
}

static inline cyc maxc(cyc a, cyc b) { return a > b ? a : b; }

/* Allocate an RS entry for a command of queue q: returns the allocation cycle. */
static cyc allocate(int q) {
  cyc arrival;
  if (src_kind == SRC_FSM) {
    arrival = maxc(t_fsm + 1, fsm_floor);
  } else {
    sync_cpu_credit(src_kind == SRC_CPU ? GSIM_CPU_ABI_INSTRUCTIONS_PER_ROCC : 0);
    t_cpu += src_kind == SRC_LIB ? GSIM_LIB_CYCLES_PER_ROCC : GSIM_CPU_CYCLES_PER_ROCC;
    arrival = t_cpu;
    /* the CPU stalls while the front queues are full */
    if (n_instr >= GSIM_FRONT_QUEUE) {
      cyc room = alloc_ring[(n_instr - GSIM_FRONT_QUEUE) % RING];
      if (room > arrival) { ctr.cpu_stall += room - arrival; arrival = room; }
      t_cpu = arrival;
    }
  }
  cyc a = maxc(arrival, last_alloc + 1);
  static const int cap[3] = {GSIM_RS_LD, GSIM_RS_EX, GSIM_RS_ST};
  if (rs_n[q] >= (uint64_t)cap[q]) {
    cyc slot = rs_ring[q][(rs_n[q] - cap[q]) % RING];
    if (slot > a) { ctr.rs_full_stall += slot - a; ctr.rs_full_q[q] += slot - a;  a = slot; }
  }
  last_alloc = a;
  alloc_ring[n_instr % RING] = a;
  if (src_kind == SRC_FSM) t_fsm = a;
  return a;
}

static void retire(int q, cyc complete) {
  if (q == QEX) ex_fe[rs_n[q] % RING] = complete; /* a compute sets its feed end after */
  rs_ring[q][rs_n[q] % RING] = complete;
  rs_n[q]++;
  if (complete > all_done) all_done = complete;
}

/* Cross-queue dependencies over the rows [row, row+n) of memory m (0 spad, 1 acc). */
static cyc dep_ready(int q, int m, uint32_t row, uint32_t n, int writes) {
  cyc t = 0;
  for (int o = 0; o < 3; o++) {
    if (o == q) continue;
    const cyc *w = wr_t[o][m] + row, *r = rd_t[o][m] + row;
    for (uint32_t i = 0; i < n; i++) {
      if (w[i] > t) t = w[i];
      if (writes && r[i] > t) t = r[i];
    }
  }
  return t;
}
static void dep_mark(int q, int m, uint32_t row, uint32_t n, int writes, cyc when) {
  cyc *v = (writes ? wr_t[q][m] : rd_t[q][m]) + row;
  uint8_t *tc = touch[m] + row;
  for (uint32_t i = 0; i < n; i++) {
    if (v[i] < when) v[i] = when;
    tc[i] = 1;
  }
}

static inline int sp_bank(uint32_t row) { return (int)(row / (GSIM_SP_ROWS / GSIM_SP_BANKS)); }
static void ex_read_mark(uint32_t a, cyc s, cyc e) {
  if (garbage(a) || is_acc(a) || e <= s) return;
  int b = sp_bank(row_of(a));
  ex_rd[b][ex_rd_n[b]++ % EXR].s = s;
  ex_rd[b][(ex_rd_n[b] - 1) % EXR].e = e;
}
/* A row write at cycle t took that cycle from the EX unit: what it does after t happens one cycle later. (The
 * per-row dependency marks of the commands already placed keep their times: an approximation.) */
static void ex_slide(cyc t) {
  /* The EX unit works in order, so each of these rings is increasing from oldest to newest: walk back from the
   * newest entry while it is still after t. */
  for (int b = 0; b < GSIM_SP_BANKS; b++)
    for (uint64_t k = ex_rd_n[b], n = 0; k > 0 && n < EXR; k--, n++) {
      typeof(ex_rd[0][0]) *r = &ex_rd[b][(k - 1) % EXR];
      if (r->e <= t) break;
      r->s += r->s > t;
      r->e++;
    }
  if (unit_free[QEX] > t) unit_free[QEX]++;
  if (lastx.valid && lastx.end > t) { lastx.start += lastx.start > t; lastx.end++; }
  if (lastp.feed_end > t) lastp.feed_end++;
  /* what comes out of commands still feeding at t (the mesh itself never stalls) */
  for (uint64_t k = mesh_n, n = 0; k > 0 && n < RING && mesh_fe[(k - 1) % RING] > t; k--, n++) {
    mesh_fe[(k - 1) % RING]++;
    mesh_ring[(k - 1) % RING]++;
  }
  for (uint64_t k = rs_n[QEX], n = 0; k > 0 && n < RING && ex_fe[(k - 1) % RING] > t; k--, n++) {
    ex_fe[(k - 1) % RING]++;
    rs_ring[QEX][(k - 1) % RING]++;
  }
  if (lastx.end > t && mesh_drain > t) mesh_drain++;
  if (mesh_drain > all_done) all_done = mesh_drain;
  for (int b = 0; b < GSIM_ACC_BANKS; b++)
    for (uint64_t k = ex_wr_n[b], n = 0; k > 0 && n < AXR && ex_wr[b][(k - 1) % AXR].fe > t; k--, n++) {
      ex_wr[b][(k - 1) % AXR].fe++;
      ex_wr[b][(k - 1) % AXR].s++;
    }
  ctr.bank_wr_stall++;
}

static inline int acc_bank(uint32_t row) { return (int)(row / (GSIM_ACC_ROWS / GSIM_ACC_BANKS)); }
/* the EX unit writes result rows [row, row + n) of the accumulator from cycle s, one every f cycles */
static void ex_write_mark(uint32_t c, long n, cyc s, int f, cyc fe) {
  if (garbage(c) || !is_acc(c) || n <= 0) return;
  int b = acc_bank(row_of(c));
  ex_wr[b][ex_wr_n[b] % AXR].s = s; ex_wr[b][ex_wr_n[b] % AXR].f = f; ex_wr[b][ex_wr_n[b] % AXR].fe = fe;
  ex_wr[b][ex_wr_n[b] % AXR].n = (int)n; ex_wr[b][ex_wr_n[b] % AXR].acc = (c >> 30) & 1;
  ex_wr_n[b]++;
}
/* the first cycle >= t at which accumulator bank b has no EX result write (acc_only: no accumulating one) */
static cyc acc_slot(int b, cyc t, int acc_only) {
  for (int moved = 1; moved;) {
    moved = 0;
    for (int i = 0; i < AXR; i++) {
      cyc s = ex_wr[b][i].s, f = ex_wr[b][i].f, n = ex_wr[b][i].n;
      if (!n || t < s || t >= s + f * n || (acc_only && !ex_wr[b][i].acc) || (t - s) % f) continue;
      t++;
      moved = 1;
    }
  }
  return t;
}

/* the cycle at which a row write into bank b that is ready at t happens (one write per bank per cycle) */
static cyc bank_write(int b, cyc t) {
  t = maxc(t, bank_wr_free[b]);
  bank_wr_free[b] = t + 1;
  if (!GSIM_SP_SINGLE_PORTED) return t;
  wr_log[b][wr_log_n[b]++ % WLOG] = t;
  for (int i = 0; i < EXR; i++)
    if (ex_rd[b][i].s <= t && t < ex_rd[b][i].e) { ex_slide(t); break; }
  return t;
}

/* row writes into bank b in [s, e), from the log (increasing per bank) */
static cyc writes_in(int b, cyc s, cyc e) {
  uint64_t n = wr_log_n[b], lo = n > WLOG ? n - WLOG : 0, hi = n;
  if (n == 0 || wr_log[b][(n - 1) % WLOG] < s) return 0;
  while (lo < hi) { /* first entry >= s */
    uint64_t mid = (lo + hi) / 2;
    if (wr_log[b][mid % WLOG] < s) lo = mid + 1; else hi = mid;
  }
  cyc k = 0;
  for (uint64_t i = lo; i < n && wr_log[b][i % WLOG] < e; i++) k++;
  return k;
}

/* The end of an EX read of `n` cycles from s on the spad banks of local addresses a1, a2 (either may be garbage
 * or in the accumulator): each row write into those banks inside the interval takes a cycle from it. */
static cyc ex_read_end(uint32_t a1, uint32_t a2, cyc s, cyc n) {
  int b1 = (!GSIM_SP_SINGLE_PORTED || garbage(a1) || is_acc(a1)) ? -1 : sp_bank(row_of(a1));
  int b2 = (!GSIM_SP_SINGLE_PORTED || garbage(a2) || is_acc(a2)) ? -1 : sp_bank(row_of(a2));
  if (b2 == b1) b2 = -1;
  cyc e = s + n;
  if (b1 < 0 && b2 < 0) return e;
  for (;;) {
    cyc k = (b1 >= 0 ? writes_in(b1, s, e) : 0) + (b2 >= 0 ? writes_in(b2, s, e) : 0);
    if (s + n + k <= e) break;
    e = s + n + k;
  }
  ctr.bank_wr_stall += e - s - n;
  return e;
}

/* one DMA request of `bytes` issued no earlier than t on a port; returns the cycle its data is done */
static cyc dma_request(cyc *t, size_t bytes, int write) {
  cyc *win = write ? wr_win : rd_win;
  uint64_t *n = write ? &wr_n : &rd_n;
  cyc *port = write ? &wr_port : &rd_port;
  if (*n >= GSIM_DMA_WINDOW) {
    cyc slot = win[(*n - GSIM_DMA_WINDOW) % RING];
    if (slot > *t) { ctr.window_stall += slot - *t; *t = slot; }
  }
  cyc beats = (cyc)((bytes + GSIM_DMA_BEAT_BYTES - 1) / GSIM_DMA_BEAT_BYTES);
  cyc start, done;
  if (write) { /* data leaves with the request; the ack returns a latency later */
    start = maxc(*t, *port);
    *port = start + beats;
    done = start + beats + GSIM_MEM_LATENCY_WR;
  } else {
    start = maxc(*t + GSIM_MEM_LATENCY_RD, *port);
    *port = start + beats;
    done = start + beats;
  }
  win[*n % RING] = done;
  (*n)++;
  *t += 1;
  if (write) { ctr.dma_wr_bytes += bytes; ctr.dma_wr_reqs++; } else { ctr.dma_rd_bytes += bytes; ctr.dma_rd_reqs++; }
  return done;
}

/* split [addr, addr+bytes) at 64 B boundaries, as the DMA does */
static cyc dma_row(cyc *t, uintptr_t addr, size_t bytes, int write) {
  cyc last = *t;
  while (bytes) {
    size_t room = GSIM_DMA_MAX_REQUEST_BYTES - (addr % GSIM_DMA_MAX_REQUEST_BYTES);
    size_t b = bytes < room ? bytes : room;
    last = maxc(last, dma_request(t, b, write));
    addr += b;
    bytes -= b;
  }
  return last;
}

static void timing_mvin(uintptr_t dram, int m, uint32_t row, long cols, long rows, long blocks, long bstride,
                        size_t esz, size_t stride, int scaled) {
  cyc a = allocate(QLD);
  cyc ready = maxc(a + 1, unit_free[QLD]);
  if (mvin_n >= GSIM_MVINS_IN_FLIGHT) ready = maxc(ready, mvin_done_ring[(mvin_n - GSIM_MVINS_IN_FLIGHT) % RING]);
  cyc dep = 0;
  for (long b = 0; b < blocks; b++) dep = maxc(dep, dep_ready(QLD, m, row + b * bstride, rows, 1));
  if (dep > ready) { ctr.dep_stall[QLD] += dep - ready; ready = dep; }
  cyc t = ready, done = ready;
  if (dram == 0) {
    t = ready + rows * blocks;
    done = t + 1;
    cyc w = ready;
    for (long r = 0; r < rows; r++)
      for (long b = 0; b < blocks; b++) {
        uint32_t dr = row + (uint32_t)(b * bstride + r);
        w = m ? acc_slot(acc_bank(dr), maxc(w, ready + r * blocks + b), 0) : bank_write(sp_bank(dr), ready + r * blocks + b);
        done = maxc(done, w + 1);
        w++;
      }
    t = maxc(t, done - 1);
  } else {
    cyc arrive = t, w = t;
    for (long r = 0; r < rows; r++) {
      if (r == 0 || stride != 0) arrive = dma_row(&t, dram + r * stride, cols * esz, 0);
      done = maxc(done, arrive);
      for (long b = 0; b < blocks; b++) {
        uint32_t dr = row + (uint32_t)(b * bstride + r);
        w = m ? acc_slot(acc_bank(dr), maxc(w, arrive), 0) : bank_write(sp_bank(dr), arrive);
        done = maxc(done, w + 1);
        w++;
      }
      if (scaled) t += GSIM_MVIN_SCALE_CYCLES_PER_ROW - 1;
    }
    done += GSIM_MVIN_COMPLETE_EXTRA;
  }
  unit_free[QLD] = t;
  ctr.busy[QLD] += t - ready;
  if (m) ctr.acc_wr_rows += (uint64_t)(rows * blocks); else ctr.sp_wr_rows += (uint64_t)(rows * blocks);
  mvin_done_ring[mvin_n++ % RING] = done;
  TRACE(dram ? "LD" : "LZ", a, ready, done);
  for (long b = 0; b < blocks; b++) dep_mark(QLD, m, row + b * bstride, rows, 1, done);
  retire(QLD, done);
}

static void timing_config(int q) {
  cyc a = allocate(q);
  cyc t = maxc(a + 1, unit_free[q]);
  if (q == QEX) { /* config_ex waits for the mesh to drain */
    t = maxc(t, mesh_drain);
    unit_free[QEX] = t + 1;
    lastx.valid = 0;
  }
  retire(q, t);
}

/* ---------------- instructions ---------------- */
static void flush_pending(void);
static GS int merging;
static int pending_loop(void);

static void begin_instr(int line) {
  if (!merging && pending_loop()) flush_pending();
  if (src_kind == SRC_CPU) cur_line = line;
  if (src_kind == SRC_FSM) ctr.fsm_instr++;
  n_instr++;
}

void gsim_config_ex(int dataflow, int act, uint32_t sys_shift, float acc_scale, size_t C_stride,
                    size_t A_stride, int A_transpose, int B_transpose, int set_only_strides, int line) {
  begin_instr(line);
  ctr.n_config++;
  if (!set_only_strides) {
    if (dataflow != 0 && dataflow != 1) fail("constraint_error", "config_ex: dataflow must be WS (1) or OS (0), got %d", dataflow);
    if (act < 0 || act > 1) fail("constraint_error", "config_ex: activation %d is not supported (NO_ACTIVATION or RELU)", act);
    if (dataflow == WEIGHT_STATIONARY && A_transpose && B_transpose)
      fail("constraint_error", "config_ex: WS with both A and B transposed is illegal");
    if (dataflow == OUTPUT_STATIONARY && B_transpose && !A_transpose)
      fail("constraint_error", "config_ex: OS with only B transposed is illegal");
    exc.df = dataflow; exc.act = act; exc.shift = sys_shift; exc.acc_scale = acc_scale;
    exc.a_t = A_transpose ? 1 : 0; exc.b_t = B_transpose ? 1 : 0;
  }
  exc.a_stride = A_stride; exc.c_stride = C_stride;
  timing_config(QEX);
}

void gsim_config_ld(size_t stride, float scale, int shrunk, int block_stride, int pixel_repeats, int id, int line) {
  (void)pixel_repeats;
  begin_instr(line);
  ctr.n_config++;
  if (id < 0 || id > 2) fail("constraint_error", "config_ld: id must be 0, 1 or 2, got %d", id);
  ldc[id].stride = stride; ldc[id].scale = scale; ldc[id].shrunk = shrunk ? 1 : 0;
  ldc[id].block_stride = block_stride;
  timing_config(QLD);
}

void gsim_config_st(size_t stride, int act, float scale, int pool_stride, int pool_size, int line) {
  (void)pool_size;
  begin_instr(line);
  ctr.n_config++;
  if (pool_stride != 0) fail("constraint_error", "config_st: pooling is not supported by this simulator");
  if (act < 0 || act > 1) fail("constraint_error", "config_st: activation %d is not supported (NO_ACTIVATION or RELU)", act);
  stc.stride = stride; stc.act = act;
  stc.scale = scale;
  timing_config(QST);
}

static void mvin_impl(int id, uintptr_t dram, uint32_t local, long cols, long rows, int line) {
  begin_instr(line);
  ctr.n_mvin++;
  if (garbage(local)) { timing_config(QLD); return; }
  int to_acc = is_acc(local), accum = (local >> 30) & 1, shrunk = ldc[id].shrunk;
  size_t esz = (to_acc && !shrunk) ? sizeof(acc_t) : sizeof(elem_t);
  long max_cols = (to_acc && !shrunk) ? GSIM_MAX_BLOCK_LEN_ACC * DIM : GSIM_MAX_BLOCK_LEN * DIM;
  check_dims(id == 0 ? "mvin" : id == 1 ? "mvin2" : "mvin3", cols, rows, max_cols, DIM);
  if (rows == 0 || cols == 0) { timing_config(QLD); return; }
  long blocks = (cols + DIM - 1) / DIM, bstride = ldc[id].block_stride;
  uint32_t row = row_of(local);
  check_local(local, row + (uint32_t)((blocks - 1) * bstride + rows), "mvin");
  size_t stride = ldc[id].stride;
  float scale = ldc[id].scale;
  if (dram) {
    uintptr_t base;
    uint32_t *sh = check_dram(dram, rows, stride, cols * esz, "mvin", &base);
    if (mvouts_since_fence) { /* a read of DRAM that an unfenced mvout wrote */
      for (long r = 0; r < rows; r++) {
        uintptr_t s = dram + r * stride;
        for (uintptr_t g = (s - base) / 4; g < (s + cols * esz - base + 3) / 4; g++)
          if (sh[g] > epoch + last_fence_instr)
            fail("hazard_error", "mvin reads DRAM that command #%u (a mvout) wrote with no fence() between them", sh[g] - epoch);
      }
    }
    for (long r = 0; r < rows; r++) {
      /* the accelerator process never touches candidate memory: it loads zeros (timing needs no data) */
      const char *src = replaying ? zero_row : (const char *)(dram + r * stride);
      for (long b = 0; b < blocks; b++) {
        long c0 = b * DIM, n = cols - c0 < DIM ? cols - c0 : DIM;
        uint32_t dr = row + (uint32_t)(r + b * bstride);
        if (!to_acc) {
          elem_t *d = sp_at(dr);
          const elem_t *s = (const elem_t *)src + c0;
          if (scale == 1.0f) memcpy(d, s, n * sizeof(elem_t));
          else for (long c = 0; c < n; c++) d[c] = mvin_scale(s[c], scale);
        } else {
          acc_t *d = acc_at(dr);
          if (accum) check_read(1, dr, 0, n, RD_ACC_MVIN);
          for (long c = 0; c < n; c++) {
            acc_t v;
            if (shrunk) v = mvin_scale(((const elem_t *)src)[c0 + c], scale);
            else {
              memcpy(&v, src + (c0 + c) * sizeof(acc_t), sizeof v);
#if GSIM_FP32
              v *= scale; /* the FP32 config scales accumulator mvins too ([G] ConfigsFP mvin_scale_acc_args) */
#endif
            }
            d[c] = accum ? wrap_add(d[c], v) : v;
          }
        }
        mark_written(to_acc, dr, 0, n);
      }
    }
  } else {
    for (long r = 0; r < rows; r++)
      for (long b = 0; b < blocks; b++) {
        long c0 = b * DIM, n = cols - c0 < DIM ? cols - c0 : DIM;
        uint32_t dr = row + (uint32_t)(r + b * bstride);
        if (!to_acc) memset(sp_at(dr), 0, n * sizeof(elem_t));
        else if (!accum) memset(acc_at(dr), 0, n * sizeof(acc_t));
        else check_read(1, dr, 0, n, RD_ACC_MVIN);
        mark_written(to_acc, dr, 0, n);
      }
  }
  timing_mvin(dram, to_acc, row, cols, rows, blocks, bstride, esz, stride, !to_acc && scale != 1.0f && dram);
}

static void flush_os(void);

static void mvout_impl(uintptr_t dram, uint32_t local, long cols, long rows, int line) {
  begin_instr(line);
  ctr.n_mvout++;
  if (os_pending) flush_os();
  if (garbage(local)) fail("address_error", "mvout from the garbage address");
  int from_acc = is_acc(local), full = from_acc && ((local >> 29) & 1);
  check_dims("mvout", cols, rows, full ? DIM : GSIM_MAX_BLOCK_LEN * DIM, DIM);
  if (rows == 0 || cols == 0) { timing_config(QST); return; }
  uint32_t row = local & 0x03FFFFFFu;
  long blocks = (cols + DIM - 1) / DIM;
  uint32_t limit = from_acc ? GSIM_ACC_ROWS : GSIM_SP_ROWS;
  if (row + (blocks - 1) * DIM + rows > limit)
    fail("address_error", "mvout: %s rows %u..%ld out of range (%u rows)", from_acc ? "accumulator" : "scratchpad",
         row, (long)row + (blocks - 1) * DIM + rows - 1, limit);
  size_t esz = full ? sizeof(acc_t) : sizeof(elem_t), stride = stc.stride;
  if (!dram) fail("address_error", "mvout to DRAM address 0");
  uintptr_t base;
  uint32_t *sh = check_dram(dram, rows, stride, cols * esz, "mvout", &base);
  for (long i = 0; i < rows; i++) {
    char *dst = (char *)(dram + i * stride);
    for (long b = 0; b < blocks; b++)
      check_read(from_acc, row + (uint32_t)(b * DIM + i), 0, cols - b * DIM < DIM ? cols - b * DIM : DIM, RD_MVOUT);
    for (long j = 0; j < cols && !replaying; j++) { /* the accelerator process never touches candidate memory */
      uint32_t r = row + (uint32_t)((j / DIM) * DIM + i);
      long c = j % DIM;
      if (!from_acc) ((elem_t *)dst)[j] = sp_at(r)[c];
      else if (full) memcpy(dst + j * sizeof(acc_t), &acc_at(r)[c], sizeof(acc_t));
      else ((elem_t *)dst)[j] = relu_e(to_elem_scaled(acc_at(r)[c], stc.scale), stc.act);
    }
    uintptr_t g0 = ((uintptr_t)dst - base) / 4, g1 = ((uintptr_t)dst + cols * esz - base + 3) / 4;
    for (uintptr_t g = g0; g < g1; g++) sh[g] = epoch + (uint32_t)n_instr;
  }
  mvouts_since_fence++;
  /* timing */
  cyc a = allocate(QST);
  cyc ready = maxc(maxc(a + 1, unit_free[QST]), last_st_complete);
  cyc dep = 0;
  for (long b = 0; b < blocks; b++) dep = maxc(dep, dep_ready(QST, from_acc, row + b * DIM, rows, 0));
  if (dep > ready) { ctr.dep_stall[QST] += dep - ready; ready = dep; }
  /* one row-block read per cycle; from the accumulator only in cycles without an accumulating EX write */
  cyc lat = from_acc ? GSIM_ACC_READ_LATENCY : GSIM_SP_READ_LATENCY, t_req = ready + lat, rd = ready;
  for (long i = 0; i < rows; i++) {
    for (long b = 0; b < blocks; b++) {
      cyc want = rd;
      if (from_acc) rd = acc_slot(acc_bank(row + (uint32_t)(b * DIM + i)), rd, 1);
      ctr.acc_rd_stall += rd - want;
      rd++;
    }
    t_req = maxc(t_req, rd + lat);
    cyc ack = dma_row(&t_req, dram + i * stride, cols * esz, 1);
    if (ack > last_ack) last_ack = ack;
  }
  cyc read_end = rd;
  if (from_acc) ctr.acc_rd_rows += (uint64_t)(rows * blocks); else ctr.sp_rd_rows += (uint64_t)(rows * blocks);
  cyc complete = read_end + 2;
  unit_free[QST] = read_end;
  last_st_complete = complete;
  TRACE("ST", a, ready, complete);
  ctr.busy[QST] += read_end - ready;
  for (long b = 0; b < blocks; b++) dep_mark(QST, from_acc, row + b * DIM, rows, 0, complete);
  retire(QST, complete);
}

static void preload_impl(uint32_t bd, uint32_t c, long bd_cols, long bd_rows, long c_cols, long c_rows, int line) {
  begin_instr(line);
  ctr.n_preload++;
  check_dims("preload B/D", bd_cols, bd_rows, DIM, DIM);
  check_dims("preload C", c_cols, c_rows, DIM, DIM);
  if (os_pending) flush_os();
  if (!garbage(bd)) check_local(bd, row_of(bd) + (uint32_t)bd_rows, "preload B/D");
  if (!garbage(c)) check_local(c, row_of(c) + (uint32_t)((c_rows ? c_rows - 1 : 0) * exc.c_stride + 1), "preload C");
  pre.valid = 1; pre.b = bd; pre.c = c;
  pre.b_cols = bd_cols; pre.b_rows = bd_rows; pre.c_cols = c_cols; pre.c_rows = c_rows;
  /* timing: the weight feed overlaps the previous compute when this preload was already queued */
  cyc a = allocate(QEX);
  int real_b = !garbage(bd) && exc.df == WEIGHT_STATIONARY;
  cyc dep = real_b ? dep_ready(QEX, is_acc(bd), row_of(bd), (uint32_t)bd_rows, 0) : 0;
  cyc ready = maxc(a + 1, dep);
  cyc feed = real_b ? DIM + (exc.b_t ? DIM : 0) : 0;
  cyc start, end;
  int factor = 1;
  if (real_b && lastx.valid && a <= lastx.start && dep <= lastx.start) {
    start = lastx.start;
    if (is_acc(bd) == lastx.a_acc && (is_acc(bd) || row_of(bd) / (GSIM_SP_ROWS / GSIM_SP_BANKS) == lastx.a_row / (GSIM_SP_ROWS / GSIM_SP_BANKS)))
      factor = GSIM_BANK_CONFLICT_FACTOR;
    cyc span = maxc(lastx.n, feed) * factor;
    if (factor > 1) ctr.bank_conflict += span / factor * (factor - 1);
    /* A and B stream in lockstep: a write into either bank stalls the pair */
    end = maxc(ex_read_end(bd, lastx.a, start, span), lastx.end);
    ex_read_mark(bd, start, end);
    unit_free[QEX] = maxc(unit_free[QEX], end);
    ctr.busy[QEX] += maxc(0, end - lastx.end);
  } else {
    start = maxc(ready, unit_free[QEX]);
    if (dep > maxc(a + 1, unit_free[QEX])) ctr.dep_stall[QEX] += dep - maxc(a + 1, unit_free[QEX]);
    end = real_b ? ex_read_end(bd, GARBAGE_ADDR, start, feed) : start + feed;
    unit_free[QEX] = end;
    ctr.busy[QEX] += end - start;
    if (real_b) ex_read_mark(bd, start, end);
  }
  lastx.valid = 0;
  lastp.feed_end = end;
  TRACE(factor > 1 ? "PRx" : "PR", a, start, end);
  if (real_b) dep_mark(QEX, is_acc(bd), row_of(bd), (uint32_t)bd_rows, 0, end);
  if (real_b) { if (is_acc(bd)) ctr.acc_rd_rows += (uint64_t)bd_rows; else ctr.sp_rd_rows += (uint64_t)bd_rows; }
  retire(QEX, end);
}

/* read an operand row (zero-padded) from the scratchpad or, scaled, from the accumulator */
static inline void operand_row(uint32_t a, uint32_t r, long ncols, acc_t *out, int what) {
  check_read(is_acc(a), r, 0, ncols, what);
  if (is_acc(a)) {
    const acc_t *s = acc_at(r);
    for (long c = 0; c < DIM; c++) out[c] = c < ncols ? (acc_t)to_elem_scaled(s[c], exc.acc_scale) : 0;
  } else {
    const elem_t *s = sp_at(r);
    for (long c = 0; c < DIM; c++) out[c] = c < ncols ? (acc_t)s[c] : 0;
  }
}

static void write_c(uint32_t c, long c_rows, long c_cols, acc_t res[DIM][DIM], int os) {
  if (garbage(c)) return;
  for (long i = 0; i < c_rows; i++) {
    uint32_t r = row_of(c) + (uint32_t)(i * exc.c_stride);
    if (is_acc(c) && ((c >> 30) & 1)) check_read(1, r, 0, c_cols, RD_ACC_C);
    mark_written(is_acc(c), r, 0, c_cols);
    if (is_acc(c)) {
      acc_t *d = acc_at(r);
      int accum = (c >> 30) & 1;
      for (long j = 0; j < c_cols; j++) {
        acc_t v = os ? rrs(res[i][j], exc.shift) : res[i][j];
        d[j] = accum ? wrap_add(d[j], v) : v;
      }
    } else {
      elem_t *d = sp_at(r);
      for (long j = 0; j < c_cols; j++) d[j] = relu_e(sat_elem(os ? rrs(res[i][j], exc.shift) : res[i][j]), exc.act);
    }
  }
}

static void flush_os(void) {
  write_c(os_c, os_c_rows, os_c_cols, pe, 1);
  os_pending = 0;
}

/* The hot loop: res = X + A·W for the rows and columns that are written. Products of int8 values summed over
 * DIM fit in int32, so the AVX2 multiply-add path gives exactly the scalar result. */
#ifdef GSIM_SIMD
__attribute__((target("avx2"))) static void ws_matmul_avx2(acc_t A[DIM][DIM], acc_t X[DIM][DIM], acc_t res[DIM][DIM],
                                                          long rows, long cols) {
  const __m256i *wp = (const __m256i *)Wp;
  enum { V = DIM / 8 };
  for (long i = 0; i < rows; i++) {
    __m256i r[V];
    for (int v = 0; v < V; v++) r[v] = _mm256_loadu_si256((const __m256i *)&X[i][8 * v]);
    for (int k = 0; k < DIM; k += 2) {
      __m256i a = _mm256_set1_epi32((int32_t)((uint32_t)(uint16_t)A[i][k] | (uint32_t)(uint16_t)A[i][k + 1] << 16));
      for (int v = 0; v < V; v++) r[v] = _mm256_add_epi32(r[v], _mm256_madd_epi16(a, wp[(k / 2) * V + v]));
    }
    if (cols == DIM) {
      for (int v = 0; v < V; v++) _mm256_storeu_si256((__m256i *)&res[i][8 * v], r[v]);
    } else {
      acc_t row[DIM];
      for (int v = 0; v < V; v++) _mm256_storeu_si256((__m256i *)&row[8 * v], r[v]);
      memcpy(res[i], row, (size_t)cols * sizeof(acc_t));
    }
  }
}
#endif

static void ws_matmul(acc_t A[DIM][DIM], acc_t X[DIM][DIM], acc_t res[DIM][DIM], long rows, long cols) {
#ifdef GSIM_SIMD
  static GS int avx2 = -1;
  if (avx2 < 0) avx2 = __builtin_cpu_supports("avx2") && !getenv("GSIM_SCALAR"); /* GSIM_SCALAR: test the fallback */
  if (avx2) { ws_matmul_avx2(A, X, res, rows, cols); return; }
#endif
  for (long i = 0; i < rows; i++)
    for (long j = 0; j < cols; j++) {
      acc_t sum = 0;
      for (int k = 0; k < DIM; k++) sum += (acc_t)(op_t)A[i][k] * (acc_t)Wt[j][k];
      res[i][j] = wrap_add(X[i][j], sum);
    }
}

/* Keep the packed copy of the weights in step with Wt. */
static void pack_weights(void) {
#ifdef GSIM_SIMD
  for (int k = 0; k < DIM; k += 2)
    for (int j = 0; j < DIM; j++) Wp[k / 2][j] = (int32_t)((uint32_t)(uint16_t)Wt[j][k] | (uint32_t)(uint16_t)Wt[j][k + 1] << 16);
#endif
}

static void compute_impl(int preloaded, uint32_t a, uint32_t bd, long a_cols, long a_rows, long bd_cols, long bd_rows, int line) {
  begin_instr(line);
  ctr.n_compute++;
  check_dims("compute A", a_cols, a_rows, DIM, DIM);
  check_dims("compute B/D", bd_cols, bd_rows, DIM, DIM);
  if (!pre.valid)
    fail("constraint_error", "compute_%s without its own preload (every compute needs a preload; use preload(GARBAGE_ADDR, C, ...) to reuse weights)",
         preloaded ? "preloaded" : "accumulated");
  pre.valid = 0;
  int ag = garbage(a), dg = garbage(bd);
  if (!ag) check_local(a, row_of(a) + (uint32_t)(((exc.a_t ? a_cols : a_rows) ? (exc.a_t ? a_cols : a_rows) - 1 : 0) * exc.a_stride + 1), "compute A");
  if (!dg) check_local(bd, row_of(bd) + (uint32_t)bd_rows, "compute B/D");
  acc_t A[DIM][DIM], X[DIM][DIM], res[DIM][DIM];
  /* rows the operand reads below do not fill are zero (operand_row fills whole rows) */
  long a_full = ag ? 0 : exc.a_t ? 0 : a_rows;
  memset(A[a_full], 0, (size_t)(DIM - a_full) * sizeof A[0]);
  if (!ag) {
    if (!exc.a_t) {
      for (long i = 0; i < a_rows; i++) operand_row(a, row_of(a) + (uint32_t)(i * exc.a_stride), a_cols, A[i], RD_A);
    } else { /* A[i][k] = row k, column i */
      acc_t tmp[DIM];
      for (long k = 0; k < a_cols; k++) {
        operand_row(a, row_of(a) + (uint32_t)(k * exc.a_stride), a_rows, tmp, RD_A);
        for (long i = 0; i < a_rows; i++) A[i][k] = tmp[i];
      }
    }
  }
  long x_full = dg ? 0 : bd_rows;
  memset(X[x_full], 0, (size_t)(DIM - x_full) * sizeof X[0]);
  if (!dg) for (long i = 0; i < bd_rows; i++) operand_row(bd, row_of(bd) + (uint32_t)i, bd_cols, X[i], RD_D);
  if (exc.df == WEIGHT_STATIONARY) {
    if (preloaded) { /* load the weights latched by the preload; a garbage B gives zeros */
      memset(Wt, 0, sizeof Wt);
      if (!garbage(pre.b)) {
        acc_t tmp[DIM][DIM];
        memset(tmp, 0, sizeof tmp);
        for (long i = 0; i < pre.b_rows; i++) operand_row(pre.b, row_of(pre.b) + (uint32_t)i, pre.b_cols, tmp[i], RD_B);
        for (int k = 0; k < DIM; k++)
          for (int j = 0; j < DIM; j++) Wt[j][k] = (op_t)(exc.b_t ? tmp[j][k] : tmp[k][j]);
      }
      pack_weights();
    }
    ws_matmul(A, X, res, pre.c_rows, pre.c_cols);
    write_c(pre.c, pre.c_rows, pre.c_cols, res, 0);
  } else { /* OS: X is B; the preload's D seeds the PE accumulators */
    if (exc.b_t) {
      acc_t t2[DIM][DIM];
      for (int i = 0; i < DIM; i++) for (int j = 0; j < DIM; j++) t2[i][j] = X[j][i];
      memcpy(X, t2, sizeof X);
    }
    if (preloaded) {
      memset(pe, 0, sizeof pe);
      if (!garbage(pre.b)) for (long i = 0; i < pre.b_rows; i++) {
        check_read(is_acc(pre.b), row_of(pre.b) + (uint32_t)i, 0, pre.b_cols, RD_OS_D);
        if (is_acc(pre.b)) { const acc_t *s = acc_at(row_of(pre.b) + (uint32_t)i); for (long j = 0; j < pre.b_cols; j++) pe[i][j] = s[j]; }
        else { const elem_t *s = sp_at(row_of(pre.b) + (uint32_t)i); for (long j = 0; j < pre.b_cols; j++) pe[i][j] = s[j]; }
      }
    }
    for (int i = 0; i < DIM; i++)
      for (int k = 0; k < DIM; k++) for (int j = 0; j < DIM; j++) pe[i][j] += A[i][k] * X[k][j];
    os_c = pre.c; os_c_rows = pre.c_rows; os_c_cols = pre.c_cols; os_pending = 1;
  }
  ctr.macs_issued += (uint64_t)a_rows * a_cols * (exc.df == WEIGHT_STATIONARY ? pre.c_cols : bd_cols);
  /* timing */
  cyc al = allocate(QEX);
  long arow_n = ag ? 0 : (exc.a_t ? a_cols : a_rows);
  cyc dep = 0;
  if (!ag) for (long i = 0; i < arow_n; i++) dep = maxc(dep, dep_ready(QEX, is_acc(a), row_of(a) + (uint32_t)(i * exc.a_stride), 1, 0));
  if (!dg) dep = maxc(dep, dep_ready(QEX, is_acc(bd), row_of(bd), (uint32_t)bd_rows, 0));
  if (!garbage(pre.c)) for (long i = 0; i < pre.c_rows; i++)
    dep = maxc(dep, dep_ready(QEX, is_acc(pre.c), row_of(pre.c) + (uint32_t)(i * exc.c_stride), 1, 1));
  cyc ready = maxc(maxc(al + 1, unit_free[QEX]), lastp.feed_end);
  if (mesh_n >= GSIM_MAX_MATMULS_IN_MESH) ready = maxc(ready, mesh_ring[(mesh_n - GSIM_MAX_MATMULS_IN_MESH) % RING]);
  if (dep > ready) { ctr.dep_stall[QEX] += dep - ready; ready = dep; }
  long rows = exc.df == WEIGHT_STATIONARY ? a_rows : DIM;
  if (exc.df == WEIGHT_STATIONARY) {
    if (ag) rows = 1;
    if (!dg && bd_rows > rows) rows = bd_rows;
    if (rows < GSIM_REUSE_ROWS_FLOOR) rows = GSIM_REUSE_ROWS_FLOOR;
  }
  int factor = 1;
  if (!ag && !dg && (is_acc(a) == is_acc(bd)) && (is_acc(a) || row_of(a) / (GSIM_SP_ROWS / GSIM_SP_BANKS) == row_of(bd) / (GSIM_SP_ROWS / GSIM_SP_BANKS)))
    factor = GSIM_BANK_CONFLICT_FACTOR;
  cyc end = ex_read_end(a, bd, ready, rows * factor);
  if (factor > 1) ctr.bank_conflict += rows * (factor - 1);
  cyc written = end + GSIM_MESH_LATENCY;
  if (!garbage(pre.c) && exc.c_stride == 1) ex_write_mark(pre.c, pre.c_rows, ready + GSIM_MESH_LATENCY - 1, factor, end);
  mesh_fe[mesh_n % RING] = end;
  mesh_ring[mesh_n++ % RING] = written;
  if (written > mesh_drain) mesh_drain = written;
  unit_free[QEX] = end;
  ctr.busy[QEX] += end - ready;
  ex_read_mark(a, ready, end);
  ex_read_mark(bd, ready, end);
  if (!ag) for (long i = 0; i < arow_n; i++) dep_mark(QEX, is_acc(a), row_of(a) + (uint32_t)(i * exc.a_stride), 1, 0, end);
  if (!dg) dep_mark(QEX, is_acc(bd), row_of(bd), (uint32_t)bd_rows, 0, end);
  if (!garbage(pre.c)) for (long i = 0; i < pre.c_rows; i++)
    dep_mark(QEX, is_acc(pre.c), row_of(pre.c) + (uint32_t)(i * exc.c_stride), 1, 1, written);
  TRACE("CM", al, ready, end);
  if (!ag) { if (is_acc(a)) ctr.acc_rd_rows += (uint64_t)arow_n; else ctr.sp_rd_rows += (uint64_t)arow_n; }
  if (!garbage(pre.c)) { if (is_acc(pre.c)) ctr.acc_wr_rows += (uint64_t)pre.c_rows; else ctr.sp_wr_rows += (uint64_t)pre.c_rows; }
  lastx.valid = 1; lastx.start = ready; lastx.end = end; lastx.n = rows * factor; lastx.a = a; lastx.a_row = ag ? 0 : row_of(a); lastx.a_acc = ag ? 2 : is_acc(a);
  retire(QEX, written);
  ex_fe[(rs_n[QEX] - 1) % RING] = end;
}

/* The intrinsics pass operands packed as the RoCC rs1/rs2 words ([31:0] address, [47:32] cols, [63:48] rows),
 * so candidate code pays for the same packing arithmetic as on the real core. */
#define ADDR_OF(w) ((uint32_t)(w))
#define COLS_OF(w) ((long)(((w) >> 32) & 0xFFFF))
#define ROWS_OF(w) ((long)(((w) >> 48) & 0xFFFF))
void gsim_mvin(int id, uintptr_t dram, uint64_t rs2, int line) {
  mvin_impl(id, dram, ADDR_OF(rs2), COLS_OF(rs2), ROWS_OF(rs2), line);
}
void gsim_mvout(uintptr_t dram, uint64_t rs2, int line) {
  mvout_impl(dram, ADDR_OF(rs2), COLS_OF(rs2), ROWS_OF(rs2), line);
}
void gsim_preload(uint64_t rs1, uint64_t rs2, int line) {
  preload_impl(ADDR_OF(rs1), ADDR_OF(rs2), COLS_OF(rs1), ROWS_OF(rs1), COLS_OF(rs2), ROWS_OF(rs2), line);
}
void gsim_compute(int preloaded, uint64_t rs1, uint64_t rs2, int line) {
  compute_impl(preloaded, ADDR_OF(rs1), ADDR_OF(rs2), COLS_OF(rs1), ROWS_OF(rs1), COLS_OF(rs2), ROWS_OF(rs2), line);
}

static float b2f(uint64_t bits) {
  union { uint32_t b; float f; } u;
  u.b = (uint32_t)bits;
  return u.f;
}

void gsim_config(uint64_t rs1, uint64_t rs2, int line) {
  switch (rs1 & 3) {
    case 0:
      gsim_config_ex((rs1 >> 2) & 1, (rs1 >> 3) & 3, (uint32_t)rs2, b2f(rs1 >> 32), (rs2 >> 48) & 0xFFFF,
                     (rs1 >> 16) & 0xFFFF, (rs1 >> 8) & 1, (rs1 >> 9) & 1, (rs1 >> 7) & 1, line);
      break;
    case 1:
      gsim_config_ld(rs2, b2f(rs1 >> 32), (rs1 >> 2) & 1, (rs1 >> 16) & 0xFFFF, (rs1 >> 8) & 0xFF, (rs1 >> 3) & 3, line);
      break;
    case 2: gsim_config_st((uint32_t)rs2, (rs1 >> 2) & 3, b2f(rs2 >> 32), (rs1 >> 4) & 3, (rs1 >> 6) & 3, line); break;
    default: gsim_unsupported("config_norm", line);
  }
}

void gsim_fence(int line) {
  begin_instr(line);
  n_instr--; /* a RISC-V fence, not a Gemmini command */
  ctr.n_fence++;
  if (os_pending) flush_os();
  if (src_kind != SRC_FSM) sync_cpu();
  cyc done = maxc(all_done, last_ack);
  if (done > t_cpu) { ctr.fence_stall += done - t_cpu; t_cpu = done; }
  last_fence_instr = n_instr;
  mvouts_since_fence = 0;
}

void gsim_flush(int skip, int line) {
  (void)skip;
  begin_instr(line);
  ctr.n_flush++;
  if (os_pending) flush_os();
  sync_cpu();
  t_cpu += GSIM_CPU_CYCLES_PER_ROCC;
}

/* ---------------- performance counters (gemmini_counter.h) ----------------
 * Eight counters, each configured to one event; a read gives the event's count since its configure (or the
 * value at the last snapshot while one is taken). Counts come from the commands the model has placed so far,
 * which a program reads after a fence; events the model does not have read 0, and the DMA is never slowed by the
 * TLB (bare-metal, as Autocomp's FireSim runs). The access is a RoCC command that bypasses the RS and returns a
 * value, so the core waits for it. */
#define NCOUNTERS 8
static GS struct { int event; uint64_t base; } cnt[NCOUNTERS];
static GS uint64_t cnt_snap[NCOUNTERS];
static GS int cnt_snapped;

static uint64_t counter_source(int event) {
  switch (event) {
    case 1: case 9: return ctr.busy[QLD];          /* MAIN_LD_CYCLES, LOAD_ACTIVE_CYCLE */
    case 2: case 12: return ctr.busy[QST];         /* MAIN_ST_CYCLES, STORE_ACTIVE_CYCLE */
    case 3: case 24: return ctr.busy[QEX];         /* MAIN_EX_CYCLES, EXE_ACTIVE_CYCLE */
    case 8: case 18: return event == 8 ? ctr.window_stall : ctr.busy[QLD]; /* LOAD_DMA_WAIT, RDMA_ACTIVE */
    case 16: case 17: return ctr.dma_rd_reqs + ctr.dma_wr_reqs; /* DMA_TLB_HIT_REQ, DMA_TLB_TOTAL_REQ */
    case 21: return ctr.busy[QST];                 /* WDMA_ACTIVE_CYCLE */
    case 29: return ctr.bank_wr_stall;             /* SCRATCHPAD_A_WAIT_CYCLE: EX cycles lost to spad writes */
    case 41: return ctr.rs_full_stall;             /* RESERVATION_STATION_FULL_CYCLES */
    case 45: return ctr.dma_rd_reqs;               /* RDMA_READ_REQUESTS */
    case 46: return ctr.dma_wr_reqs;               /* WDMA_WRITE_REQUESTS */
    case 46 + 4: return ctr.dma_rd_bytes;          /* RDMA_BYTES_REC */
    case 46 + 5: return ctr.dma_wr_bytes;          /* WDMA_BYTES_SENT */
    case 46 + 8: return ctr.sp_rd_rows;            /* SCRATCHPAD_READS */
    case 46 + 9: return ctr.sp_wr_rows;            /* SCRATCHPAD_WRITES */
    case 46 + 10: return ctr.acc_rd_rows;          /* ACCUMULATOR_READS */
    case 46 + 11: return ctr.acc_wr_rows;          /* ACCUMULATOR_WRITES */
    default: return 0;                             /* not in the model (TLB misses, im2col, ...) */
  }
}

uint32_t gsim_counter(int op, int index, int event, int line) {
  if (!merging && pending_loop()) flush_pending();
  if (src_kind != SRC_FSM) cur_line = line;
  if (index < 0 || index >= NCOUNTERS) fail("constraint_error", "counter index %d is out of range (0..%d)", index, NCOUNTERS - 1);
  sync_cpu_credit(GSIM_CPU_ABI_INSTRUCTIONS_PER_ROCC);
  t_cpu += GSIM_CPU_CYCLES_PER_ROCC;
  uint64_t v = 0;
  switch (op) {
    case 0: v = cnt_snapped ? cnt_snap[index] : counter_source(cnt[index].event) - cnt[index].base; break;
    case 1: cnt[index].event = event; cnt[index].base = counter_source(event); break;
    case 2: memset(cnt, 0, sizeof cnt); cnt_snapped = 0; break;
    case 3:
      for (int i = 0; i < NCOUNTERS; i++) cnt_snap[i] = counter_source(cnt[i].event) - cnt[i].base;
      cnt_snapped = 1;
      break;
    default: cnt_snapped = 0;
  }
  return (uint32_t)v;
}

/* ---------------- Autocomp harness helpers (weak: a candidate's own definition wins) ---------------- */
/* The CPU reading DRAM that an unfenced mvout is still writing is a race, as it is for a mvin. */
static void check_cpu_read(const void *p, long n, const char *what) {
  uintptr_t base, lo = (uintptr_t)p;
  if (n <= 0 || !mvouts_since_fence) return;
  uint32_t *sh = shadow_for(lo, lo + n, &base);
  if (!sh) return;
  for (uintptr_t g = (lo - base) / 4; g < (lo + n - base + 3) / 4; g++)
    if (sh[g] > epoch + last_fence_instr) {
      cur_line = 0; /* the helper's own line is unknown */
      fail("hazard_error", "%s reads DRAM that command #%u (a mvout) wrote with no fence() between them", what, sh[g] - epoch);
    }
}

__attribute__((weak)) void add_matrix(const elem_t *a, const elem_t *b, elem_t *out, int rows, int cols) {
  if (pending_loop()) flush_pending();
  check_cpu_read(a, (long)rows * cols * sizeof(elem_t), "add_matrix");
  check_cpu_read(b, (long)rows * cols * sizeof(elem_t), "add_matrix");
  for (long i = 0; i < (long)rows * cols && !replaying; i++) out[i] = (elem_t)(a[i] + b[i]);
  sync_cpu();
  t_cpu += (cyc)rows * cols * GSIM_CPU_CYCLES_PER_BLOCK; /* one loop iteration per element */
}
__attribute__((weak)) void negate_matrix(const elem_t *in, elem_t *out, int rows, int cols) {
  if (pending_loop()) flush_pending();
  check_cpu_read(in, (long)rows * cols * sizeof(elem_t), "negate_matrix");
  for (long i = 0; i < (long)rows * cols && !replaying; i++) out[i] = (elem_t)-in[i];
  sync_cpu();
  t_cpu += (cyc)rows * cols * GSIM_CPU_CYCLES_PER_BLOCK;
}

/* ---------------- loop_ws: expanded as LoopMatmul issues it ---------------- */
#include "loops.inc"
#include "library.inc"

/* ---------------- harness support ---------------- */
static void fill_garbage(void *p, size_t bytes, uint64_t seed) {
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull, *w = p;
  for (size_t i = 0; i < bytes / 8; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; w[i] = x; }
#if GSIM_FP32
  /* garbage floats, but no NaN payloads that could compare equal by accident: small finite values */
  for (size_t i = 0; i < bytes / 4; i++) ((uint32_t *)p)[i] = 0x40000000u | (((uint32_t *)p)[i] & 0x007FFFFFu) | (((uint32_t *)p)[i] & 0x80000000u);
#endif
}

void gsim_reset(void) {
  /* seed-dependent garbage, as after power-up or the previous program (n_resets counts the harness's seeds) */
  fill_garbage(spad, (size_t)GSIM_SP_ROWS * DIM * sizeof(elem_t), 2 * n_resets + 1);
  fill_garbage(acc, (size_t)GSIM_ACC_ROWS * DIM * sizeof(acc_t), 2 * n_resets + 2);
  n_resets++;
  memset(wmask[0], 0, GSIM_SP_ROWS * sizeof(uint64_t)); memset(wmask[1], 0, GSIM_ACC_ROWS * sizeof(uint64_t));
  memset(&uninit, 0, sizeof uninit);
  for (int i = 0; i < 3; i++) { ldc[i].stride = DIM * sizeof(elem_t); ldc[i].scale = 1.0f; ldc[i].shrunk = 0; ldc[i].block_stride = DIM; }
  memset(&exc, 0, sizeof exc);
  exc.df = WEIGHT_STATIONARY; exc.acc_scale = 1.0f; exc.a_stride = 1; exc.c_stride = 1;
  stc.stride = DIM * sizeof(elem_t); stc.act = 0; stc.scale = 1.0f;
  memset(&pre, 0, sizeof pre); memset(Wt, 0, sizeof Wt); pack_weights(); memset(pe, 0, sizeof pe); os_pending = 0;
  loop_ws_count = 0; c_half = 0; pend_free(); merging = 0;
  memset(&ctr, 0, sizeof ctr);
  memset(cnt, 0, sizeof cnt); cnt_snapped = 0;
  t_cpu = t_fsm = last_alloc = all_done = last_ack = fsm_floor = 0;
  memset(alloc_ring, 0, sizeof alloc_ring); memset(rs_ring, 0, sizeof rs_ring); memset(rs_n, 0, sizeof rs_n);
  memset(unit_free, 0, sizeof unit_free);
  for (int q = 0; q < 3; q++) {
    memset(wr_t[q][0], 0, GSIM_SP_ROWS * sizeof(cyc)); memset(rd_t[q][0], 0, GSIM_SP_ROWS * sizeof(cyc));
    memset(wr_t[q][1], 0, GSIM_ACC_ROWS * sizeof(cyc)); memset(rd_t[q][1], 0, GSIM_ACC_ROWS * sizeof(cyc));
  }
  memset(touch[0], 0, GSIM_SP_ROWS); memset(touch[1], 0, GSIM_ACC_ROWS);
  rd_n = wr_n = 0; rd_port = wr_port = 0; mvin_n = 0; mesh_n = 0; mesh_drain = 0; last_st_complete = 0;
  memset(&lastx, 0, sizeof lastx); memset(&lastp, 0, sizeof lastp);
  memset(ex_rd, 0, sizeof ex_rd); memset(ex_rd_n, 0, sizeof ex_rd_n); memset(bank_wr_free, 0, sizeof bank_wr_free);
  memset(mesh_fe, 0, sizeof mesh_fe); memset(ex_fe, 0, sizeof ex_fe);
  memset(wr_log, 0, sizeof wr_log); memset(wr_log_n, 0, sizeof wr_log_n); memset(ex_wr, 0, sizeof ex_wr); memset(ex_wr_n, 0, sizeof ex_wr_n);
  epoch += (uint32_t)n_instr + 1;
  n_instr = 0; last_fence_instr = 0; mvouts_since_fence = 0; cur_line = 0;
  src_kind = SRC_CPU;
  bb_seen = *cpu_bc;
  insns_seen = *cpu_ic;
  cpu_frac = 0;
}

/* The writable segments (data, bss) of the loaded object that holds the candidate's entry point. */
static int find_lib(struct dl_phdr_info *info, size_t size, void *arg) {
  (void)size; (void)arg;
  uintptr_t entry = (uintptr_t)gsim_entry, lo = UINTPTR_MAX, hi = 0;
  int mine = 0;
  for (int i = 0; i < info->dlpi_phnum; i++) {
    const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
    if (ph->p_type != PT_LOAD) continue;
    uintptr_t a = info->dlpi_addr + ph->p_vaddr, b = a + ph->p_memsz;
    if (entry >= a && entry < b) mine = 1;
    if (ph->p_flags & PF_W) { if (a < lo) lo = a; if (b > hi) hi = b; }
  }
  if (!mine || hi <= lo) return 0;
  lib_lo = lo & ~(uintptr_t)3; lib_hi = hi;
  return 1;
}

/* The candidate's process: find its object's writable segments once it is loaded. The accelerator process:
 * the same range, as the candidate reported it (checked: at most 1 GiB, clear of our own data and stack). */
void gsim_set_lib(uint64_t lo, uint64_t hi) {
  if (!lo && !hi) return;
  if (hi <= lo || hi - lo > (1ull << 30) || !(hi <= data_lo || lo >= data_hi) || !(hi <= stack_lo || lo >= stack_hi))
    fail("sandbox_violation", "the candidate reported an impossible memory range");
  lib_lo = (uintptr_t)lo; lib_hi = (uintptr_t)hi;
  shadow_lib = calloc((lib_hi - lib_lo) / 4 + 2, sizeof(uint32_t));
  if (!shadow_lib) fail("runtime_error", "simulator out of memory");
}

void gsim_attach_lib(void) {
  if (gsim_entry && dl_iterate_phdr(find_lib, NULL)) {
    uint64_t lo = lib_lo, hi = lib_hi;
    lib_lo = lib_hi = 0;
    gsim_set_lib(lo, hi);
  }
}

void gsim_init(void *stack_probe) {
  fesetround(FE_TONEAREST);
  if (getenv("GSIM_TRACE")) dbg_trace = fopen(getenv("GSIM_TRACE"), "w");
  spad = calloc((size_t)GSIM_SP_ROWS * DIM, sizeof(elem_t));
  acc = calloc((size_t)GSIM_ACC_ROWS * DIM, sizeof(acc_t));
  for (int q = 0; q < 3; q++) {
    wr_t[q][0] = calloc(GSIM_SP_ROWS, sizeof(cyc)); rd_t[q][0] = calloc(GSIM_SP_ROWS, sizeof(cyc));
    wr_t[q][1] = calloc(GSIM_ACC_ROWS, sizeof(cyc)); rd_t[q][1] = calloc(GSIM_ACC_ROWS, sizeof(cyc));
  }
  touch[0] = calloc(GSIM_SP_ROWS, 1); touch[1] = calloc(GSIM_ACC_ROWS, 1);
  wmask[0] = calloc(GSIM_SP_ROWS, sizeof(uint64_t)); wmask[1] = calloc(GSIM_ACC_ROWS, sizeof(uint64_t));
  data_lo = (uintptr_t)&__etext & ~(uintptr_t)3; data_hi = (uintptr_t)&_end;
  stack_hi = (uintptr_t)stack_probe + 65536; stack_lo = stack_hi - (8u << 20);
  shadow_data = calloc((data_hi - data_lo) / 4 + 2, sizeof(uint32_t));
  shadow_stack = calloc((stack_hi - stack_lo) / 4 + 2, sizeof(uint32_t));
  if (!spad || !acc || !shadow_data || !shadow_stack || !wmask[0] || !wmask[1]) fail("runtime_error", "simulator out of memory");
  gsim_reset();
}

/* The harness calls this after each seed's solution returns: a final fence (it also writes pending OS
 * results), then the figures as "name value" lines into buf. Returns the length written. */
size_t gsim_stats(char *buf, size_t cap) {
  sync_cpu();
  gsim_fence(0);
  uint64_t sp_touched = 0, acc_touched = 0;
  for (int i = 0; i < GSIM_SP_ROWS; i++) sp_touched += touch[0][i];
  for (int i = 0; i < GSIM_ACC_ROWS; i++) acc_touched += touch[1][i];
  size_t n = 0;
#define P(k, v) \
  do { \
    int w_ = snprintf(buf + n, cap - n, "%s %llu\n", k, (unsigned long long)(v)); \
    if (w_ > 0 && (size_t)w_ < cap - n) n += (size_t)w_; \
  } while (0)
  P("cycles", t_cpu); P("instructions", n_instr); P("fsm_instructions", ctr.fsm_instr);
  P("n_mvin", ctr.n_mvin); P("n_mvout", ctr.n_mvout); P("n_preload", ctr.n_preload); P("n_compute", ctr.n_compute);
  P("n_config", ctr.n_config); P("n_fence", ctr.n_fence); P("n_loop_ws", ctr.n_loop_ws); P("n_loop_conv_ws", ctr.n_loop_conv);
  P("n_flush", ctr.n_flush);
  P("dma_read_bytes", ctr.dma_rd_bytes); P("dma_write_bytes", ctr.dma_wr_bytes);
  P("dma_read_requests", ctr.dma_rd_reqs); P("dma_write_requests", ctr.dma_wr_reqs);
  P("busy_ld", ctr.busy[QLD]); P("busy_ex", ctr.busy[QEX]); P("busy_st", ctr.busy[QST]);
  P("stall_dep_ld", ctr.dep_stall[QLD]); P("stall_dep_ex", ctr.dep_stall[QEX]); P("stall_dep_st", ctr.dep_stall[QST]);
  P("stall_rs_full", ctr.rs_full_stall); P("stall_rs_full_ld", ctr.rs_full_q[QLD]);
  P("stall_rs_full_ex", ctr.rs_full_q[QEX]); P("stall_rs_full_st", ctr.rs_full_q[QST]); P("stall_cpu_front_queue", ctr.cpu_stall); P("stall_fence", ctr.fence_stall);
  P("stall_dma_window", ctr.window_stall); P("bank_conflict_cycles", ctr.bank_conflict);
  P("stall_bank_write", ctr.bank_wr_stall); P("stall_acc_read", ctr.acc_rd_stall);
  P("spad_rows_touched", sp_touched); P("acc_rows_touched", acc_touched);
  P("cpu_basic_blocks", ctr.bb); P("cpu_instructions", ctr.insns); P("macs_issued", ctr.macs_issued);
  P("uninit_reads", uninit.count);
  if (uninit.count) {
    P("uninit_instr", uninit.instr); P("uninit_line", uninit.line); P("uninit_mem", uninit.mem);
    P("uninit_row", uninit.row); P("uninit_what", uninit.what);
  }
  P("seccomp", sealed);
#undef P
  return n;
}

/* Hand-run programs (tests, benchmarks): the stats into a file. */
void gsim_finish(const char *path) {
  char buf[4096];
  size_t n = gsim_stats(buf, sizeof buf);
  FILE *f = fopen(path, "w");
  if (!f) fail("runtime_error", "cannot write %s", path);
  fwrite(buf, 1, n, f);
  fclose(f);
}

#include "channel.inc"
