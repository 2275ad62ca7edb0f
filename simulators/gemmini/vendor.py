"""`vendor_code(kernel, fsm)`: a solution that calls the vendor library (tiled_matmul_auto / tiled_conv_auto).

`fsm=True` is the current library (each tile goes to the loop FSMs); `fsm=False` selects the older software
path, where the CPU issues every command, by defining GEMMINI_LIBRARY_FSM 0 before the call.
"""

from __future__ import annotations

from .kernels import parse_kernel

_SOFTWARE = "#undef GEMMINI_LIBRARY_FSM\n#define GEMMINI_LIBRARY_FSM 0\n"


def vendor_code(kernel: str, fsm: bool = True) -> str:
    spec = parse_kernel(kernel)
    prefix = "" if fsm else _SOFTWARE
    if spec.kind == "matmul":
        if spec.a_t and spec.b_t:
            raise ValueError(f"{kernel}: the library cannot transpose both A and B in WS")
        d = "(acc_t *)D" if spec.bias else "NULL"
        act = "RELU" if spec.relu else "NO_ACTIVATION"
        sa = "MAT_DIM_I" if spec.a_t else "MAT_DIM_K"
        sb = "MAT_DIM_K" if spec.b_t else "MAT_DIM_J"
        flags = ", ".join("true" if f else "false" for f in (spec.bias, spec.a_t, spec.b_t))
        body = (
            "  tiled_matmul_auto(MAT_DIM_I, MAT_DIM_J, MAT_DIM_K, (elem_t *)A, (elem_t *)B, "
            f"{d}, (elem_t *)C, {sa}, {sb}, MAT_DIM_J, MAT_DIM_J, MVIN_SCALE_IDENTITY, "
            f"MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, {act}, ACC_SCALE_IDENTITY, 0, "
            f"{flags}, false, false, 3, WS);\n"
        )
    elif spec.kind == "conv":
        body = (
            "  tiled_conv_auto(BATCH_SIZE, IN_ROW_DIM, IN_COL_DIM, IN_CHANNELS, OUT_CHANNELS, OUT_ROW_DIM, "
            "OUT_COL_DIM, 1, 1, 1, 0, KERNEL_DIM, false, false, false, false, false, (elem_t *)inp, "
            "(elem_t *)weights, (acc_t *)bias, (elem_t *)output, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0, 0, 0, WS);\n"
        )
    elif spec.kind == "tinympc-matvec":
        # u = (Kinf^T x + d) * -1: A = Kinf transposed, bias d, output scale -1.
        body = (
            "  tiled_matmul_auto(NU, 1, NX, (elem_t *)Kinf, (elem_t *)x, (acc_t *)d, (elem_t *)u, NU, 1, 1, 1, "
            "MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, -1.0f, 0, "
            "false, true, false, false, false, 3, WS);\n"
        )
    elif spec.kind == "tinympc-forward":
        body = (
            "  static float Kx[NU][1], Ax[NX][1];\n"
            "  for (int i = 0; i < NHORIZON - 1; i++) {\n"
            "    /* u_i = -(Kinf x_i) - d_i */\n"
            "    tiled_matmul_auto(NU, 1, NX, (elem_t *)Kinf, (elem_t *)x[i], (acc_t *)d[i], (elem_t *)u[i], NX, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, -1.0f, 0,"
            " false, false, false, false, false, 3, WS);\n"
            "    /* x_{i+1} = Adyn x_i + Bdyn u_i */\n"
            "    tiled_matmul_auto(NX, 1, NX, (elem_t *)Adyn, (elem_t *)x[i], NULL, (elem_t *)Ax, NX, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0,"
            " false, false, false, false, false, 3, WS);\n"
            "    tiled_matmul_auto(NX, 1, NU, (elem_t *)Bdyn, (elem_t *)u[i], (acc_t *)Ax, (elem_t *)x[i + 1], NU, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0,"
            " false, false, false, false, false, 3, WS);\n"
            "  }\n"
            "  (void)Kx;\n"
        )
    else:  # tinympc-backward
        body = (
            "  static float t[NU][1], Ap[NX][1], Kr[NX][1];\n"
            "  for (int i = NHORIZON - 2; i >= 0; i--) {\n"
            "    /* t = Bdyn^T p_{i+1} + r_i ; d_i = Quu_inv^T t */\n"
            "    tiled_matmul_auto(NU, 1, NX, (elem_t *)Bdyn, (elem_t *)p[i + 1], (acc_t *)r[i], (elem_t *)t, NU, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0,"
            " false, true, false, false, false, 3, WS);\n"
            "    tiled_matmul_auto(NU, 1, NU, (elem_t *)Quu_inv, (elem_t *)t, NULL, (elem_t *)d[i], NU, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0,"
            " false, true, false, false, false, 3, WS);\n"
            "    /* p_i = q_i + AmBKt p_{i+1} - Kinf^T r_i */\n"
            "    tiled_matmul_auto(NX, 1, NU, (elem_t *)Kinf, (elem_t *)r[i], NULL, (elem_t *)Kr, NX, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, -1.0f, 0,"
            " false, true, false, false, false, 3, WS);\n"
            "    for (int k = 0; k < NX; k++) Kr[k][0] += q[i][k][0];\n"
            "    tiled_matmul_auto(NX, 1, NX, (elem_t *)AmBKt, (elem_t *)p[i + 1], (acc_t *)Kr, (elem_t *)Ap, NX, 1, 1, 1,"
            " MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, MVIN_SCALE_IDENTITY, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0,"
            " false, false, false, false, false, 3, WS);\n"
            "    for (int k = 0; k < NX; k++) p[i][k][0] = Ap[k][0];\n"
            "  }\n"
        )
    return f"{prefix}{spec.signature()} {{\n{body}  fence();\n}}\n"
