"""A tiny eBPF assembler: the few instructions the ebpf capture probe needs, as bytes.

    a = Asm()
    a.mov64_reg(R6, R1)
    a.ldx(W, R0, R6, 0)
    a.jmp_imm(JEQ, R0, 0, "out")     # jumps take label names
    ...
    a.label("out")
    a.mov64_imm(R0, 0)
    a.exit()
    code = a.assemble()              # bytes, 8 per instruction (16 for ld_imm64)

Encoding (include/uapi/linux/bpf.h, Documentation/bpf/standardization/instruction-set.rst):
opcode u8, dst_reg:4 | src_reg:4 (dst in the low nibble), off s16, imm s32, little endian.
"""

import struct

R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = range(11)

# instruction classes
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07
# sizes
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
# modes
IMM, MEM, ATOMIC = 0x00, 0x60, 0xC0
# ALU operations
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0)
K, X = 0x00, 0x08
TO_BE = 0x08
# jump operations
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE = (
    0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0, 0xB0)

PSEUDO_MAP_FD = 1

# helper ids
FN_map_lookup_elem = 1
FN_map_update_elem = 2
FN_ktime_get_ns = 5
FN_skb_load_bytes = 26
FN_ringbuf_reserve = 131
FN_ringbuf_submit = 132
FN_ringbuf_discard = 133
FN_ktime_get_coarse_ns = 160

_INSN = struct.Struct("<BBhi")


class AsmError(ValueError):
    pass


class Asm(object):
    def __init__(self):
        self.insns = []          # [opcode, dst, src, off (int or label), imm]
        self.labels = {}

    def _emit(self, op, dst=0, src=0, off=0, imm=0):
        self.insns.append([op, dst, src, off, imm])

    def label(self, name):
        if name in self.labels:
            raise AsmError("duplicate label %r" % name)
        self.labels[name] = len(self.insns)

    # ALU
    def alu64_imm(self, op, dst, imm):
        self._emit(ALU64 | op | K, dst, 0, 0, imm)

    def alu64_reg(self, op, dst, src):
        self._emit(ALU64 | op | X, dst, src)

    def mov64_imm(self, dst, imm):
        self.alu64_imm(MOV, dst, imm)

    def mov64_reg(self, dst, src):
        self.alu64_reg(MOV, dst, src)

    def be16(self, dst):
        """dst = htons(dst) on a little-endian host (byte swap of the low 16 bits, zero-extended)."""
        self._emit(ALU | END | TO_BE, dst, 0, 0, 16)

    # memory
    def ldx(self, size, dst, src, off):
        self._emit(LDX | MEM | size, dst, src, off)

    def stx(self, size, dst, off, src):
        self._emit(STX | MEM | size, dst, src, off)

    def st(self, size, dst, off, imm):
        self._emit(ST | MEM | size, dst, 0, off, imm)

    def atomic(self, size, op, dst, off, src):
        """*(size *)(dst + off) op= src, atomically (op ADD or OR; no fetch)."""
        self._emit(STX | ATOMIC | size, dst, src, off, op)

    def ld_map_fd(self, dst, fd):
        self._emit(LD | IMM | DW, dst, PSEUDO_MAP_FD, 0, fd)
        self._emit(0, 0, 0, 0, 0)

    # jumps
    def jmp_imm(self, op, dst, imm, label):
        self._emit(JMP | op | K, dst, 0, label, imm)

    def jmp_reg(self, op, dst, src, label):
        self._emit(JMP | op | X, dst, src, label)

    def ja(self, label):
        self._emit(JMP | JA, 0, 0, label)

    def call(self, fn):
        self._emit(JMP | CALL, 0, 0, 0, fn)

    def exit(self):
        self._emit(JMP | EXIT)

    def assemble(self):
        out = []
        for pc, (op, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                if off not in self.labels:
                    raise AsmError("undefined label %r" % off)
                off = self.labels[off] - pc - 1
                if not -32768 <= off <= 32767:
                    raise AsmError("jump out of range")
            out.append(_INSN.pack(op, (src << 4) | dst, off, imm))
        return b"".join(out)

    def __len__(self):
        return len(self.insns)
