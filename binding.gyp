{
  "variables": {
    "gloo%": "<!(node scripts/find-system-gloo.js)",
    "werror%": "<!(node -p \"process.env.SYNCBN_WERROR === '1' ? 1 : 0\")"
  },
  "targets": [
    {
      "target_name": "syncbn",
      "sources": [
        "native/addon/addon.cpp",
        "native/addon/allocation.cpp",
        "native/addon/batch_norm.cpp",
        "native/addon/comm.cpp",
        "native/addon/cuda.cpp",
        "native/kernels/cpu/batch_norm.cpp",
        "native/kernels/cpu/batch_norm_base.cpp",
        "native/comm/reduce.cpp",
        "native/comm/checked.cpp",
        "native/comm/hmac_sha256.cpp",
        "native/comm/threads.cpp",
        "native/comm/store_client.cpp",
        "native/comm/gloo_mesh.cpp",
        "native/comm/gloo_watch.cpp",
        "native/comm/gloo.cpp",
        "native/comm/nccl.cpp"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "dependencies": ["syncbn_kernels_isa"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fopenmp", "-O3", "-fno-math-errno", "-Wall", "-Wextra"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldl", "-lpthread"],
      "conditions": [
        ["gloo==1", {"defines": ["SYNCBN_HAVE_GLOO"], "libraries": ["-lgloo"]}],
        ["werror==1", {"cflags_cc": ["-Werror"]}]
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "OTHER_CPLUSPLUSFLAGS": ["-std=c++17", "-Xpreprocessor", "-fopenmp"]
      }
    },
    {
      "target_name": "syncbn_kernels_isa",
      "type": "static_library",
      "sources": ["native/kernels/cpu/batch_norm_avx2.cpp"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-fopenmp", "-O3", "-fno-math-errno", "-fPIC", "-Wall", "-Wextra"],
      "conditions": [
        ["target_arch=='x64'", {"cflags_cc": ["-mavx2", "-mfma", "-mf16c"]}],
        ["werror==1", {"cflags_cc": ["-Werror"]}]
      ]
    }
  ]
}
