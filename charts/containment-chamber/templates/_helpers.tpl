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
