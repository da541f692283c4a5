# syntax=docker/dockerfile:1
# One image for both commands:
#   reconciler run              the GitOps loop (the chart's Deployment, non-root)
#   reconciler agent apply      the node agent (the node Jobs; they set their own securityContext)
#
# Build:   docker build -t multinic-reconciler:dev .      (or: podman build / buildah bud)
# Check:   docker run --rm multinic-reconciler:dev --version
#
# The agent activates through the node's own network stack over the host's system D-Bus socket
# (the only host socket the Job mounts): `nmcli` talks to the node's NetworkManager, `dbus-send`
# calls netplan's D-Bus service (Generate, Apply). `ip` (iproute2) renames NICs by MAC and reads
# the live state for verification; `ping` runs the node file's probes. See docs/security.md.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm

# --- build: a wheel and a self-contained virtualenv ------------------------------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/multinic
COPY pyproject.toml README.md ./
COPY requirements/runtime.txt ./requirements/runtime.txt
COPY reconciler ./reconciler
COPY schemas ./schemas
COPY charts/multinic-reconciler/crds ./charts/multinic-reconciler/crds
COPY example-repo ./example-repo
# Dependencies exactly as locked (versions and hashes, scripts/lock.sh), then our wheel alone.
RUN /opt/multinic/bin/pip install --require-hashes --no-deps -r requirements/runtime.txt \
 && /opt/multinic/bin/pip wheel --no-deps --no-build-isolation --wheel-dir /wheels . \
 && /opt/multinic/bin/pip install --no-deps /wheels/*.whl \
 && /opt/multinic/bin/reconciler --version

# --- runtime ------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="multinic-reconciler" \
      org.opencontainers.image.description="GitOps reconciler and node agent for multi-NIC Kubernetes nodes on Proxmox VE" \
      org.opencontainers.image.source="https://github.com/multinic/multinic-reconciler" \
      org.opencontainers.image.licenses="Apache-2.0"
# git + ssh: the config repo (clone, fetch, status push); the agent: iproute2, iputils-ping,
# dbus-bin (dbus-send), network-manager (for nmcli only: no daemon ever runs in the container).
RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client iproute2 iputils-ping dbus-bin \
      network-manager ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 65532 multinic \
 && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home --shell /usr/sbin/nologin multinic
COPY --from=build /opt/multinic /opt/multinic
ENV PATH=/opt/multinic/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOME=/tmp
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["reconciler"]
CMD ["run"]
