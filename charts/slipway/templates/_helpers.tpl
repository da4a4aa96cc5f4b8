{{/* The release's base name: the release name when it holds "slipway", else <release>-slipway. */}}
{{- define "slipway.fullname" -}}
{{- if contains "slipway" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-slipway" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "slipway.labels" -}}
app.kubernetes.io/name: slipway
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: include with (list $ "api"). */}}
{{- define "slipway.selector" -}}
app.kubernetes.io/name: slipway
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "slipway.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The Kubernetes "restricted" Pod Security Standard, and a read-only root filesystem. */}}
{{- define "slipway.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "slipway.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: [ALL]
{{- end -}}

{{- define "slipway.jwtSecret" -}}
{{- .Values.api.jwt.existingSecret | default (printf "%s-jwt" (include "slipway.fullname" .)) -}}
{{- end -}}

{{/* Environment every component reads. */}}
{{- define "slipway.commonEnv" -}}
- name: SLIPWAY_METRICS_LISTEN
  value: "0.0.0.0:9090"
- name: SLIPWAY_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: SLIPWAY_INGRESS_DOMAIN
  value: {{ .Values.ingressDomain | quote }}
{{- with .Values.workspaceEmailDomains }}
- name: SLIPWAY_WORKSPACE_EMAIL_DOMAINS
  value: {{ join "," . | quote }}
{{- end }}
{{- if .Values.plans }}
- name: SLIPWAY_PLANS
  value: /etc/slipway/plans.yaml
{{- end }}
- name: SLIPWAY_MAIL_FROM
  value: {{ .Values.mail.from | quote }}
- name: SLIPWAY_SMTP_URL
{{- if .Values.mail.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.mail.existingSecret }}
      key: {{ .Values.mail.existingSecretKey }}
{{- else }}
  value: {{ .Values.mail.smtpUrl | quote }}
{{- end }}
{{- end -}}

{{- define "slipway.plansVolume" -}}
{{- if .Values.plans }}
- name: plans
  configMap:
    name: {{ include "slipway.fullname" . }}-plans
{{- end }}
{{- end -}}

{{- define "slipway.plansMount" -}}
{{- if .Values.plans }}
- name: plans
  mountPath: /etc/slipway
  readOnly: true
{{- end }}
{{- end -}}

{{- define "slipway.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Where Prometheus finds each pod's /metrics (annotation-based discovery). */}}
{{- define "slipway.metricsAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: "9090"
prometheus.io/path: /metrics
{{- end -}}

{{/*
Zero-downtime rollouts of the pods that serve traffic (API, webhook). A rollout first starts a
new pod and waits for it to be ready (maxUnavailable 0), and a deleted pod keeps serving for
shutdownDelaySeconds (preStop sleep) while the endpoint controller and kube-proxy take it out
of its Service; only then does SIGTERM start the graceful shutdown, which finishes the requests
in flight. Without the delay, clients still routed to the pod meet a closed port. See
https://kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle/#pod-termination
*/}}
{{- define "slipway.rollingUpdate" -}}
strategy:
  type: RollingUpdate
  rollingUpdate:
    maxUnavailable: 0
    maxSurge: 1
{{- end -}}

{{- define "slipway.drain" -}}
lifecycle:
  preStop:
    sleep:
      seconds: {{ .Values.shutdownDelaySeconds }}
{{- end -}}
