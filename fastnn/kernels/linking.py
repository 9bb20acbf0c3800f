"""Compiling the helpers to LLVM IR only, leaving optimisation and machine code to the entries.

Numba gives every compiled function a library of LLVM IR. Finalising it links in the libraries
of the functions it calls, optimises the whole (the full -O3 module passes) and compiles the
result to machine code. A helper's library is finalised when the helper is compiled, so a
helper deep in the call tree was optimised and compiled to machine code once for every level
above it (two thirds of the LLVM time of a first fit), though only the entries' machine code
ever runs, and the entry's own finalisation optimises the whole tree as one module again.

`HelperLibrary` is the library of a helper: finalising it links the callees' IR in, as Numba
does, but neither optimises nor compiles it: the entry's finalisation does both, once. The
only thing of the helper that Numba asks the machine for is the address of its environment
(`CPUCodegen.set_env`), given by a module holding those variables alone. The per-function
passes that Numba runs as each function is added (`_optimize_functions`) are kept.

What it saves, measured: docs/design.md. The entries' machine code computes the same bits
(the golden and same-bits tests).
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba.core.codegen import JITCodeLibrary
from numba.core.compiler import Compiler

# Numba's name of a function's environment variable (`BaseContext.get_env_name`).
_ENVIRONMENT_PREFIX = "_ZN08NumbaEnv"


class HelperLibrary(JITCodeLibrary):
    """The library of a function that only compiled code calls (see the module's docstring)."""

    def _optimize_final_module(self) -> None:
        pass  # the entry that links this IR in optimises it, with the rest of its tree

    def _finalize_final_module(self) -> None:
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        engine = self._codegen._engine
        engine.add_module(_environments(self._final_module))
        engine.finalize_object()
        self._finalized = True


def _environments(module: llvm.ModuleRef) -> llvm.ModuleRef:
    """A module defining `module`'s environment variables and nothing else: pointers, null
    until Numba sets them, with "common" linkage, as Numba defines them."""
    environments = ir.Module(name=f"{module.name}.environments")
    environments.triple = module.triple
    environments.data_layout = str(module.data_layout)
    pointer = ir.IntType(8).as_pointer()
    for variable in module.global_variables:
        if variable.name.startswith(_ENVIRONMENT_PREFIX) and not variable.is_declaration:
            definition = ir.GlobalVariable(environments, pointer, variable.name)
            definition.linkage = "common"
            definition.initializer = ir.Constant(pointer, None)
    return llvm.parse_assembly(str(environments))


class HelperCompiler(Compiler):
    """Numba's compiler, building a helper into a `HelperLibrary`."""

    def compile_extra(self, func):
        if self.state.library is None:
            codegen = self.state.targetctx.codegen()
            self.state.library = HelperLibrary(codegen, func.__qualname__)
            self.state.library.enable_object_caching()  # as Numba's lowering does
        return super().compile_extra(func)
