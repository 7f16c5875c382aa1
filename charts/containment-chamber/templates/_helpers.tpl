{{- define "cc.name" -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "cc.labels" -}}
app: containment-chamber
app.kubernetes.io/name: containment-chamber
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
{{- end -}}

{{- define "cc.selector" -}}
app: containment-chamber
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* The proxy's metrics ports (PROXY_METRICS in the entrypoint): vsock-stdout, then one per
egress endpoint; the Service and the ServiceMonitor name the same ports. */}}
{{- define "cc.proxyPorts" -}}
- name: proxy-logs
  containerPort: {{ .Values.metrics.proxyPort }}
{{- range $i, $e := .Values.egress.endpoints }}
- name: proxy-egress-{{ $i }}
  containerPort: {{ add $.Values.metrics.proxyPort 1 $i }}
{{- end }}
{{- end -}}
