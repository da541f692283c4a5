"""Apply stage: make the live side match the plan (kube, node jobs, proxmox)."""
