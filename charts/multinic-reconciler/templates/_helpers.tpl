{{/* Chart name, truncated to a DNS label. */}}
{{- define "multinic.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "multinic.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "multinic.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "multinic.selectorLabels" -}}
app.kubernetes.io/name: {{ include "multinic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: reconciler
{{- end }}

{{/* Labels without a component (the node agent's objects add their own). */}}
{{- define "multinic.baseLabels" -}}
helm.sh/chart: {{ include "multinic.chart" . }}
app.kubernetes.io/name: {{ include "multinic.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: multinic-reconciler
{{- end }}

{{- define "multinic.labels" -}}
{{ include "multinic.baseLabels" . }}
app.kubernetes.io/component: reconciler
{{- end }}

{{- define "multinic.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "multinic.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The node Jobs' ServiceAccount (the code's default is multinic-node-agent). */}}
{{- define "multinic.agentServiceAccountName" -}}
{{- default "multinic-node-agent" .Values.agent.serviceAccount.name }}
{{- end }}

{{- define "multinic.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* One image runs both commands: the agent defaults to the reconciler's image. */}}
{{- define "multinic.agentImage" -}}
{{- if or .Values.agent.image.repository .Values.agent.image.tag }}
{{- $repo := default .Values.image.repository .Values.agent.image.repository }}
{{- $tag := default (default .Chart.AppVersion .Values.image.tag) .Values.agent.image.tag }}
{{- printf "%s:%s" $repo $tag }}
{{- else }}
{{- include "multinic.image" . }}
{{- end }}
{{- end }}

{{/* The Lease the code elects on (reconciler/loop/leader.py); RBAC names it. */}}
{{- define "multinic.leaseName" -}}
multinic-reconciler
{{- end }}
