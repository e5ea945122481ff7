{
  "targets": [
    {
      "target_name": "portail_systemd",
      "sources": ["portail_systemd.c", "sock_diag.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
