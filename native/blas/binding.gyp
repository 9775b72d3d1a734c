{
  # dcnr_blas: OpenBLAS sgemm for Node through plain N-API (no npm dependency).
  # Build: node build.mjs (or node-gyp rebuild --nodedir=/usr offline on Debian).
  "targets": [
    {
      "target_name": "dcnr_blas",
      "sources": ["dcnr_blas.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-O3", "-Wall", "-Wextra", "-ffp-contract=off", "-fno-math-errno"],
      "cflags_c": ["-std=c11"],
      # -lopenblas, not -lblas: on Debian -lblas may resolve to the slow reference BLAS.
      "libraries": ["-lopenblas"]
    }
  ]
}
