/* gsim-count IN.s OUT.s: charge the candidate's CPU work where it runs, without a call per basic block.
 *
 * gcc -fsanitize-coverage=trace-pc puts `call __sanitizer_cov_trace_pc` at the start of every basic block.
 * This tool counts the instructions of each block in gcc's assembly (from the call to the first jump or
 * return, the next block's call, or the end of the function), and replaces the call by two additions to
 * counters in the candidate's own object: `gsim_icount` += the block's length, `gsim_bcount` += 1. At a
 * trace call the flags and caller-saved registers are dead (it is an ordinary call), so the additions
 * change nothing else (a tail call of the trace function, `jmp`, becomes the additions and `ret`). Every section is handled alike (.text.unlikely, .text.hot, ...), so a block is
 * charged its real length wherever the compiler puts it. Our own code, run before the candidate's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_trace_call(const char *s) {
  return strncmp(s, "\tcall\t__sanitizer_cov_trace_pc", 30) == 0 || strncmp(s, "\tcallq\t__sanitizer_cov_trace_pc", 31) == 0;
}
/* At -O2 a block that only returns becomes a tail call of the trace function. */
static int is_trace_jump(const char *s) { return strncmp(s, "\tjmp\t__sanitizer_cov_trace_pc", 29) == 0; }

/* An instruction line: a tab, then a mnemonic (not a directive, not a comment). */
static int is_insn(const char *s) { return s[0] == '\t' && s[1] && s[1] != '.' && s[1] != '#' && s[1] != '\n'; }

static int ends_block(const char *s) { return s[1] == 'j' || strncmp(s + 1, "ret", 3) == 0; }

/* A call into the simulator's runtime (an intrinsic): the block's count is split there, so each command is
 * stamped with the instructions before it and a long straight block issues its commands as the core would. */
static int is_gsim_call(const char *s) { return strncmp(s, "\tcall\tgsim_", 11) == 0 || strncmp(s, "\tcallq\tgsim_", 12) == 0; }

/* A label at column 0 that is not a local one (.L...) starts a function or a data object. */
static int is_symbol_label(const char *s) { return s[0] != '\t' && s[0] != '.' && s[0] != '#' && strchr(s, ':'); }

static int ends_function(const char *s) {
  return strncmp(s, "\t.cfi_endproc", 13) == 0 || strncmp(s, "\t.size\t", 7) == 0 || strncmp(s, "\t.section", 9) == 0 ||
         strncmp(s, "\t.text", 6) == 0 || is_symbol_label(s);
}

int main(int argc, char **argv) {
  if (argc != 3) { fputs("usage: gsim-count IN.s OUT.s\n", stderr); return 2; }
  FILE *in = fopen(argv[1], "r");
  if (!in) { perror(argv[1]); return 2; }
  size_t cap = 1 << 12, n = 0;
  char **lines = malloc(cap * sizeof *lines);
  char buf[8192];
  while (lines && fgets(buf, sizeof buf, in)) {
    if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
    if (lines) lines[n++] = strdup(buf);
  }
  fclose(in);
  if (!lines) { fputs("gsim-count: out of memory\n", stderr); return 2; }
  long *len = calloc(n + 1, sizeof *len); /* for each trace-call line: its block's first segment, else -1 */
  long *seg = calloc(n + 1, sizeof *seg); /* for each intrinsic call in a block: the segment after it */
  long open = -1, at = -1; /* the line index of the open block's trace call; of the open segment's owner */
  for (size_t i = 0; i < n; i++) {
    const char *s = lines[i];
    len[i] = -1;
    if (is_trace_call(s)) {
      open = at = (long)i;
      len[i] = 0;
      continue;
    }
    if (is_trace_jump(s)) { /* charged as the block it stands for: `ret` */
      open = at = -1;
      len[i] = 1;
      continue;
    }
    if (ends_function(s)) {
      open = at = -1;
      continue;
    }
    if (open >= 0 && is_insn(s)) {
      if (at == open) len[open]++;
      else seg[at]++;
      if (ends_block(s)) open = at = -1;
      else if (is_gsim_call(s)) at = (long)i; /* the instructions after this call are added after it */
    }
  }
  FILE *out = fopen(argv[2], "w");
  if (!out) { perror(argv[2]); return 2; }
  for (size_t i = 0; i < n; i++) {
    if (strncmp(lines[i], "\t.addrsig", 9) == 0) continue; /* clang's, for the linker's ICF; GNU as has none */
    if (len[i] >= 0) fprintf(out, "\taddq\t$%ld, .Lgsim_ic(%%rip)\n\taddq\t$1, .Lgsim_bc(%%rip)\n", len[i]);
    else fputs(lines[i], out);
    /* after a call the flags are dead (callers may not keep them across one) and addq uses no register */
    if (seg[i] > 0) fprintf(out, "\taddq\t$%ld, .Lgsim_ic(%%rip)\n", seg[i]);
    if (len[i] >= 0 && is_trace_jump(lines[i])) fputs("\tret\n", out);
  }
  /* The counters, in the candidate's own .bss; the harness finds them by name. */
  fputs("\t.bss\n\t.align 8\n\t.globl\tgsim_icount\n\t.type\tgsim_icount, @object\n\t.size\tgsim_icount, 8\n"
        "gsim_icount:\n.Lgsim_ic:\n\t.zero\t8\n\t.globl\tgsim_bcount\n\t.type\tgsim_bcount, @object\n"
        "\t.size\tgsim_bcount, 8\ngsim_bcount:\n.Lgsim_bc:\n\t.zero\t8\n",
        out);
  if (fclose(out) != 0) { perror(argv[2]); return 2; }
  return 0;
}
