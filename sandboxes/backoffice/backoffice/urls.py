from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

admin.site.site_header = "Acme back office"
admin.site.site_title = "Acme back office"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
]
